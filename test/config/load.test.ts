/**
 * Config is validated once at the edge: every problem is listed (path, value, reason),
 * defaults are applied, durations become milliseconds, and the result is deeply frozen.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import {
  ConfigError,
  formatPath,
  loadProxyConfig,
  parseDocuments,
  parseProxyConfig,
  validate,
} from '../../src/config/load.ts';
import { parseDuration } from '../../src/config/duration.ts';
import { resourceSchema } from '../../src/config/resources.ts';

const dir = mkdtempSync(join(tmpdir(), 'hexmesh-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function problemsOf(fn: () => unknown): ConfigError['problems'] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.equal(err.code, 'HEXMESH_ERR_CONFIG_INVALID');
    return err.problems;
  }
  assert.fail('expected the config to be refused');
}

const route = (value: string) => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'HTTPRoute',
  metadata: { name: 'r1' },
  spec: {
    parentRefs: [{ name: 'web' }],
    rules: [{ matches: [{ path: { type: 'RegularExpression', value } }] }],
  },
});
const ringHash = {
  apiVersion: 'hexmesh.io/v1alpha1',
  kind: 'TrafficPolicy',
  metadata: { name: 'p1' },
  spec: { targetRef: { name: 'web' }, loadBalancer: { type: 'ringHash' } },
};

test('every problem is listed at once, each with its path, value and reason', () => {
  const problems = problemsOf(() =>
    parseProxyConfig({
      proxy: {
        service: 'web',
        headerTimeout: '10 seconds',
        outbound: { address: '127.0.0.1', port: 70000 },
        bogus: 1,
      },
      resources: [route('/a('), ringHash],
    }),
  );
  const byPath = new Map(problems.map((p) => [p.path, p]));
  assert.equal(problems.length, 5, JSON.stringify(problems));
  assert.match(byPath.get('proxy.headerTimeout')!.message, /invalid duration "10 seconds"/);
  assert.equal(byPath.get('proxy.headerTimeout')!.value, '10 seconds');
  assert.equal(byPath.get('proxy.outbound.port')!.value, 70000);
  assert.match(byPath.get('proxy.outbound.port')!.message, /65535/);
  assert.match(byPath.get('proxy')!.message, /unknown field "bogus"/);
  const re = byPath.get('resources[0].spec.rules[0].matches[0].path.value')!;
  assert.match(re.message, /invalid regular expression/);
  assert.equal(re.value, '/a(');
  assert.match(byPath.get('resources[1].spec.loadBalancer.hashOn')!.message, /ringHash needs hashOn/);
});

test('the error message names the source and lists every problem on its own line', () => {
  try {
    parseProxyConfig({ proxy: { service: '', drainTimeout: 'soon' } }, 'my.yaml');
    assert.fail('expected a ConfigError');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    const lines = err.message.split('\n');
    assert.match(lines[0], /^my\.yaml: invalid configuration \(2 problems\):$/);
    assert.ok(
      lines.some((l) => /^ {2}- proxy\.service: .* \(got ""\)$/.test(l)),
      err.message,
    );
    assert.ok(
      lines.some((l) => /^ {2}- proxy\.drainTimeout: invalid duration "soon"/.test(l)),
      err.message,
    );
  }
});

test('a missing required section is reported at the root', () => {
  const problems = problemsOf(() => parseProxyConfig({}));
  assert.deepEqual(
    problems.map((p) => p.path),
    ['proxy'],
  );
});

test('defaults are applied and durations become milliseconds', () => {
  const c = parseProxyConfig({
    proxy: { service: 'web', headerTimeout: '1m30s', drainTimeout: 2500 },
    services: [{ name: 'reviews', endpoints: [{ address: '10.0.0.1', port: 9080 }] }],
    resources: [
      {
        ...ringHash,
        spec: { ...ringHash.spec, loadBalancer: { type: 'ringHash', hashOn: { header: 'x-user' } } },
      },
    ],
  });
  assert.equal(c.apiVersion, 'hexmesh.io/v1alpha1');
  assert.equal(c.version, 0);
  assert.deepEqual(c.proxy.outbound, { address: '127.0.0.1', port: 4140 });
  assert.deepEqual(c.proxy.inbound, { address: '0.0.0.0', port: 4143 });
  assert.deepEqual(c.proxy.admin, { address: '127.0.0.1', port: 4191 });
  assert.equal(c.proxy.namespace, 'default');
  assert.equal(c.proxy.headerTimeout, 90_000);
  assert.equal(c.proxy.drainTimeout, 2500);
  assert.equal(c.proxy.detectTimeout, 1000);
  assert.equal(c.proxy.idleTimeout, 300_000);
  assert.equal(c.proxy.maxHeaderSize, 16 * 1024);
  assert.equal(c.proxy.accessLog, false);
  const ep = c.services[0].endpoints[0];
  assert.deepEqual(
    { weight: ep.weight, health: ep.health, meshed: ep.meshed },
    { weight: 1, health: 'passing', meshed: true },
  );
  assert.deepEqual(c.services[0].ports, [{ port: 80, protocol: 'http' }]);
  const policy = c.resources[0];
  assert.equal(policy.kind, 'TrafficPolicy');
  if (policy.kind !== 'TrafficPolicy') return;
  assert.equal(policy.metadata.namespace, 'default');
  assert.equal(policy.spec.loadBalancer?.panicThreshold, 50);
  assert.equal(policy.spec.loadBalancer?.decay, 10_000);
});

test('the result is deeply frozen', () => {
  const c = parseProxyConfig({
    proxy: { service: 'web' },
    services: [{ name: 'reviews', endpoints: [{ address: '10.0.0.1', port: 9080, labels: { v: '1' } }] }],
  });
  assert.ok(Object.isFrozen(c));
  assert.ok(Object.isFrozen(c.proxy.outbound));
  assert.ok(Object.isFrozen(c.services[0].endpoints));
  assert.ok(Object.isFrozen(c.services[0].endpoints[0].labels));
  assert.throws(() => {
    (c.proxy as { service: string }).service = 'x';
  }, TypeError);
  assert.throws(() => {
    (c.services as unknown[]).push({});
  }, TypeError);
});

test('resource schema: invalid header regex, redirect + backendRefs, backendRequest > request', () => {
  const doc = [
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'bad' },
      spec: {
        parentRefs: [{ name: 'web' }],
        rules: [
          {
            matches: [{ headers: [{ type: 'RegularExpression', name: 'x-v', value: '[' }] }],
            timeouts: { request: '1s', backendRequest: '2s' },
            filters: [{ type: 'RequestRedirect', requestRedirect: {} }],
            backendRefs: [{ name: 'web' }],
          },
        ],
      },
    },
    { apiVersion: 'hexmesh.io/v1alpha1', kind: 'Frobnicator', metadata: { name: 'x' } },
  ];
  const problems = [0, 1].flatMap((i) => problemsOf(() => validate(resourceSchema, doc[i], 'r')));
  const paths = problems.map((p) => p.path);
  assert.ok(paths.includes('spec.rules[0].matches[0].headers[0].value'), paths.join());
  assert.ok(paths.includes('spec.rules[0].timeouts.backendRequest'), paths.join());
  assert.ok(paths.includes('spec.rules[0].backendRefs'), paths.join());
  assert.ok(paths.includes('kind'), paths.join());
});

test('YAML syntax errors carry line and column, without the position repeated in the message', () => {
  const problems = problemsOf(() =>
    parseDocuments('proxy:\n  service: web\n  app: { port: 1\n bad: [\n', 'x.yaml'),
  );
  assert.ok(problems.length >= 1);
  for (const p of problems) {
    assert.match(p.path, /^line \d+, column \d+$/);
    assert.doesNotMatch(p.message, /at line \d+/);
    assert.ok(p.message.length > 0);
  }
});

test('loadProxyConfig: unreadable file, several documents, and a good file', async () => {
  const missing = join(dir, 'missing.yaml');
  await assert.rejects(loadProxyConfig(missing), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.match(e.message, /cannot read file/);
    return true;
  });
  const two = join(dir, 'two.yaml');
  writeFileSync(two, 'proxy: { service: a }\n---\nproxy: { service: b }\n');
  await assert.rejects(loadProxyConfig(two), /expected one YAML document, found 2/);
  const good = join(dir, 'good.json');
  writeFileSync(good, JSON.stringify({ proxy: { service: 'web', drainTimeout: '5s' } }));
  const c = await loadProxyConfig(good);
  assert.equal(c.proxy.drainTimeout, 5000);
});

test('formatPath', () => {
  assert.equal(formatPath([]), '');
  assert.equal(formatPath(['a', 0, 'b', 'c', 2]), 'a[0].b.c[2]');
  assert.equal(formatPath([1, 'spec']), '[1].spec');
});

test('property: durations built from parts parse to their sum; anything else is refused', () => {
  const unit = fc.constantFrom(['ms', 1], ['s', 1000], ['m', 60_000], ['h', 3_600_000]) as fc.Arbitrary<
    [string, number]
  >;
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.integer({ min: 0, max: 10_000 }), unit), { minLength: 1, maxLength: 4 }),
      (parts) => {
        const text = parts.map(([n, [u]]) => `${n}${u}`).join('');
        const ms = parts.reduce((a, [n, [, f]]) => a + n * f, 0);
        assert.equal(parseDuration(text), ms);
      },
    ),
  );
  for (const bad of ['', '10', '1x', 'ms', '-1s', '1 s', '1s-', 'soon', '10 seconds'])
    assert.equal(parseDuration(bad), undefined, bad);
  assert.equal(parseDuration(-1), undefined);
  assert.equal(parseDuration(Number.NaN), undefined);
  assert.equal(parseDuration('0'), 0);
});
