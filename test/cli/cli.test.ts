/**
 * The `hexmesh` command line as a user runs it (`node bin/hexmesh.js ...`): help for every
 * command, usage errors (exit 2), invalid config refused with every problem listed (exit 3),
 * `validate`, and a listener port already in use (exit 1).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { EXIT } from '../../src/cli/exit-codes.ts';
import { runCli } from '../support/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'hexmesh-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const BAD = `
proxy:
  service: web
  headerTimeout: 10 seconds
  outbound: { address: 127.0.0.1, port: 70000 }
  bogus: 1
resources:
  - apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: { name: r1 }
    spec:
      parentRefs: [{ name: web }]
      rules:
        - matches: [{ path: { type: RegularExpression, value: "/a(" } }]
  - apiVersion: hexmesh.io/v1alpha1
    kind: TrafficPolicy
    metadata: { name: p1 }
    spec:
      targetRef: { name: web }
      loadBalancer: { type: ringHash }
`;
/** Each problem of BAD: its path, and what the line must say. */
const BAD_PROBLEMS: [string, RegExp][] = [
  ['proxy.headerTimeout', /invalid duration "10 seconds".*\(got "10 seconds"\)/],
  ['proxy.outbound.port', /65535.*\(got 70000\)/],
  ['proxy', /unknown field "bogus"/],
  ['resources[0].spec.rules[0].matches[0].path.value', /invalid regular expression.*\(got "\/a\("\)/],
  ['resources[1].spec.loadBalancer.hashOn', /ringHash needs hashOn/],
];

function assertListsEveryProblem(stderr: string, source: string): void {
  assert.match(
    stderr,
    new RegExp(`${source.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: invalid configuration \\(5 problems\\)`),
  );
  const lines = stderr.split('\n');
  for (const [path, re] of BAD_PROBLEMS) {
    const prefix = `  - ${path}: `;
    const line = lines.find((l) => l.startsWith(prefix));
    assert.ok(line, `no line for ${path} in:\n${stderr}`);
    assert.match(line, re);
  }
}

test('--help works for every command and exits 0', async () => {
  const cases: [string[], RegExp][] = [
    [['--help'], /Usage: hexmesh \[options\] \[command\][\s\S]*proxy[\s\S]*validate[\s\S]*demo/],
    [['proxy', '--help'], /Usage: hexmesh proxy[\s\S]*--config[\s\S]*SIGHUP/],
    [['validate', '--help'], /Usage: hexmesh validate \[options\] <file\.\.\.>/],
    [['demo', '--help'], /Usage: hexmesh demo[\s\S]*--once/],
    [['help', 'proxy'], /Usage: hexmesh proxy/],
  ];
  const results = await Promise.all(cases.map(([args]) => runCli(args)));
  results.forEach((r, i) => {
    assert.equal(r.code, EXIT.OK, `${cases[i][0].join(' ')}: ${r.stderr}`);
    assert.match(r.stdout, cases[i][1]);
  });
});

test('an unknown command or flag exits 2 with a clear message', async () => {
  const good = file('good-usage.yaml', 'proxy: { service: web }\n');
  const cases: [string[], RegExp][] = [
    [['nosuch'], /unknown command 'nosuch'/],
    [['--nosuch'], /unknown option '--nosuch'/],
    [['proxy', '--config', good, '--nosuch'], /unknown option '--nosuch'/],
    [['validate', good, '--nosuch'], /unknown option '--nosuch'/],
    [['proxy'], /required option '-c, --config <file>' not specified/],
    [['validate'], /missing required argument 'file'/],
  ];
  const results = await Promise.all(cases.map(([args]) => runCli(args)));
  results.forEach((r, i) => {
    const what = cases[i][0].join(' ');
    assert.equal(r.code, EXIT.USAGE, `${what}: exit ${r.code}, stderr ${r.stderr}`);
    assert.match(r.stderr, cases[i][1], what);
    assert.match(r.stderr, /--help/, `${what}: points at --help`);
  });
});

test('proxy refuses an invalid config at start, listing every problem with its path; exit 3', async () => {
  const bad = file('bad.yaml', BAD);
  const r = await runCli(['proxy', '--config', bad]);
  assert.equal(r.code, EXIT.CONFIG, r.stderr);
  assertListsEveryProblem(r.stderr, bad);
  assert.equal(r.stdout, '', 'nothing started');
});

test('a YAML syntax error is reported with line and column; exit 3', async () => {
  const bad = file('syntax.yaml', 'proxy:\n  service: web\n  app: { port: 1\n bad: [\n');
  const r = await runCli(['proxy', '--config', bad]);
  assert.equal(r.code, EXIT.CONFIG, r.stderr);
  assert.match(r.stderr, /invalid configuration/);
  assert.match(r.stderr, /^ {2}- line \d+, column \d+: \S/m);
});

test('a missing config file is a config error naming the file; exit 3', async () => {
  const missing = join(dir, 'nope.yaml');
  const r = await runCli(['proxy', '--config', missing]);
  assert.equal(r.code, EXIT.CONFIG);
  assert.ok(r.stderr.includes(missing));
  assert.match(r.stderr, /cannot read file/);
});

test('validate prints valid for a good file (exit 0) and every problem for a bad one (exit 3)', async () => {
  const bad = file('bad-validate.yaml', BAD);
  const [ok, quick, invalid] = await Promise.all([
    runCli(['validate', file('good.yaml', 'proxy: { service: web }\nservices: [{ name: reviews }]\n')]),
    runCli(['validate', 'examples/quickstart/frontend-proxy.yaml']),
    runCli(['validate', bad]),
  ]);
  assert.equal(ok.code, EXIT.OK, ok.stderr);
  assert.match(ok.stdout, /good\.yaml: valid \(1 services, 0 resources\)/);
  assert.equal(quick.code, EXIT.OK, quick.stderr);
  assert.match(quick.stdout, /frontend-proxy\.yaml: valid/);
  assert.equal(invalid.code, EXIT.CONFIG);
  assert.equal(invalid.stdout, '');
  assertListsEveryProblem(invalid.stderr, bad);
});

test('a listener port already in use: a clear error naming the listener and address; exit 1', async (t) => {
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  t.after(() => blocker.close());
  const port = (blocker.address() as net.AddressInfo).port;
  const any = '{ address: 127.0.0.1, port: 0 }';
  const busy = `{ address: 127.0.0.1, port: ${port} }`;
  const cfg = (o: string, i: string, a: string) =>
    `proxy:\n  service: web\n  outbound: ${o}\n  inbound: ${i}\n  admin: ${a}\n`;
  const cases: [string, string, RegExp][] = [
    ['outbound', cfg(busy, any, any), new RegExp(`outbound listener .*127\\.0\\.0\\.1:${port}.*EADDRINUSE`)],
    ['inbound', cfg(any, busy, any), new RegExp(`inbound listener .*127\\.0\\.0\\.1:${port}.*EADDRINUSE`)],
    ['admin', cfg(any, any, busy), new RegExp(`admin listener .*127\\.0\\.0\\.1:${port}.*EADDRINUSE`)],
  ];
  const results = await Promise.all(
    cases.map(([name, text]) => runCli(['proxy', '--config', file(`busy-${name}.yaml`, text)], 15_000)),
  );
  results.forEach((r, i) => {
    // Exits promptly: the listeners that did bind are closed (it used to hang here).
    assert.equal(r.signal, null, `${cases[i][0]}: killed after the timeout, the process hung`);
    assert.equal(r.code, EXIT.RUNTIME, `${cases[i][0]}: ${r.stderr}`);
    assert.match(r.stderr, cases[i][2]);
  });
});

test('proxy --check http:<path> takes a path on the app only ("/health"), refused at start naming the flag', async () => {
  for (const spec of ['http:health', 'http://evil.example/x', 'http:/a b']) {
    const r = await runCli(['proxy', '--control', 'http://127.0.0.1:1', '--service', 'web', '--check', spec]);
    assert.notEqual(r.code, 0, spec);
    assert.match(r.stderr, /--check http:<path> must be a path on the app/, `${spec}: ${r.stderr}`);
  }
});
