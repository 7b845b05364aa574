/**
 * The sidecar process loads only what it uses (issue 11): a real `hexmesh proxy` (the bundle,
 * as `npm run bench` runs it) under test/support/module-trace.mjs, which lists at exit every
 * module the process's main thread loaded. The packages that validate and parse configuration
 * (zod, yaml) must not be among them: a config file is validated in a child process
 * (src/config/config-worker.ts). A module list, not a memory figure: those are
 * bench/sidecar-footprint.ts's and docs/benchmark.md's.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { stringify } from 'yaml';
import { packagesIn } from '../../bench/sidecar-footprint.ts';
import { ControlClient } from '../../src/cli/client/control-client.ts';
import { credentialsFile, waitForBootstrapToken } from '../../src/runtime/bootstrap-token.ts';
import { JoinTokenIssuer } from '../../src/runtime/join-token-issuer.ts';
import { freePort } from '../../src/runtime/ports.ts';
import { BIN, ROOT } from '../support/cli.ts';
import { ControlProcess } from '../support/control-process.ts';
import { PemDir, TestCa } from '../support/pki.ts';

const TRACER = join(ROOT, 'test', 'support', 'module-trace.mjs');

let ca: TestCa;
let pem: PemDir;

before(async () => {
  ca = await TestCa.create('hexmesh.test', 'footprint');
  pem = new PemDir();
});
after(() => pem.close());

/** A sidecar process under the module tracer; `stop()` ends it and returns its packages. */
function traced(
  args: string[],
  env: Record<string, string> = {},
): {
  output: () => string;
  waitFor: (re: RegExp, timeoutMs?: number) => Promise<void>;
  signal: (s: NodeJS.Signals) => void;
  stop: () => Promise<string[]>;
  /** The module URLs the trace listed (after `stop`). */
  modules: () => string[];
} {
  const trace = pem.write(`trace-${Math.random().toString(36).slice(2)}.txt`, '');
  const child = spawn(process.execPath, ['--import', TRACER, BIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env, MODULE_TRACE: trace },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d));
  child.stderr.on('data', (d: Buffer) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let done = false;
  void exited.then(() => (done = true));
  return {
    output: () => out,
    async waitFor(re, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      while (!re.test(out)) {
        if (done || Date.now() > deadline)
          throw new Error(`never printed ${re} (${done ? 'exited' : 'timeout'}):\n${out}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    signal: (s) => child.kill(s),
    modules: () => readFileSync(trace, 'utf8').split('\n').filter(Boolean),
    async stop() {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      const code = await exited;
      clearTimeout(timer);
      assert.equal(code, 0, `the proxy exits 0 on SIGTERM:\n${out}`);
      return packagesIn(readFileSync(trace, 'utf8'));
    },
  };
}

/** A sidecar for service web on ephemeral listeners, its app on a port nothing answers. */
const WEB_PROXY = {
  service: 'web',
  outbound: { address: '127.0.0.1', port: 0 },
  inbound: { address: '127.0.0.1', port: 0 },
  admin: { address: '127.0.0.1', port: 0 },
  app: { port: 9 },
};

test('a sidecar started from a YAML file with mTLS loads neither zod, yaml nor undici, at start or on SIGHUP', async (t) => {
  const tls = pem.identityFiles('web', await ca.issue(ca.id('default', 'web')), ca.rootPem);
  const file = join(pem.path, 'web.yaml');
  const config = (drainTimeout: string) => ({
    proxy: {
      ...WEB_PROXY,
      drainTimeout,
      tls: { ...tls, mode: 'STRICT' },
    },
    services: [{ name: 'api', endpoints: [{ address: '127.0.0.1', port: 9 }] }],
  });
  writeFileSync(file, stringify(config('5s')));
  const p = traced(['proxy', '--config', file]);
  t.after(() => p.signal('SIGKILL'));
  await p.waitFor(/hexmesh proxy web: outbound=/);
  // A reload validates the file again, in another child process.
  writeFileSync(file, stringify(config('4s')));
  p.signal('SIGHUP');
  await p.waitFor(/reloaded .*web\.yaml/);
  const packages = await p.stop();
  // The trace is real: the bundle's own chunks are in it.
  assert.ok(
    p.modules().some((url) => url.includes('/dist/chunks/')),
    `no bundle chunk in the trace:\n${p.modules().join('\n')}`,
  );
  // The packages a sidecar uses are compiled into the bundle (scripts/bundle.mjs): none is
  // loaded from node_modules, so the process carries no CommonJS loader.
  assert.equal(packages.length, 0, `packages loaded from node_modules: ${packages.join(', ')}`);
  // undici: the HTTP/1.1 hop is Node's own parser now (src/proxy/transport/h1-*.ts).
  for (const kept of ['zod', 'yaml', 'undici'])
    assert.ok(!packages.includes(kept), `the sidecar loaded ${kept}: ${packages.join(', ')}`);
});

test('an invalid file is still refused at start with every problem by path (validated in the child process)', async () => {
  const file = join(pem.path, 'bad.json');
  writeFileSync(
    file,
    JSON.stringify({ proxy: { service: 'Web', admin: { address: '127.0.0.1', port: 70000 } } }),
  );
  const p = traced(['proxy', '--config', file]);
  await p.waitFor(/invalid configuration \(2 problems\)/);
  assert.match(p.output(), /proxy\.service: must be a DNS-1123 label/);
  assert.match(p.output(), /proxy\.admin\.port: .*\(got 70000\)/);
});

test('a RequestAuthentication with an inline JWKS loads jose, not undici (only a jwksUri fetch needs it)', async (t) => {
  const jwk = {
    ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' }),
    kid: 'k1',
  };
  const file = join(pem.path, 'jwt.yaml');
  writeFileSync(
    file,
    stringify({
      proxy: WEB_PROXY,
      resources: [
        {
          apiVersion: 'hexmesh.io/v1alpha1',
          kind: 'RequestAuthentication',
          metadata: { name: 'idp' },
          spec: {
            targetRef: { kind: 'Service', name: 'web' },
            jwtRules: [{ issuer: 'https://idp.test', jwks: JSON.stringify({ keys: [jwk] }) }],
          },
        },
      ],
    }),
  );
  const p = traced(['proxy', '--config', file]);
  t.after(() => p.signal('SIGKILL'));
  await p.waitFor(/hexmesh proxy web: outbound=/);
  const inbound = Number(/ inbound=[^:\s]+:(\d+)/.exec(p.output())![1]);
  // A malformed token is refused by the JWT authenticator: it is built, jose loaded.
  const res = await fetch(`http://127.0.0.1:${inbound}/`, { headers: { authorization: 'Bearer not-a-jwt' } });
  await res.body?.cancel();
  assert.equal(res.status, 401);
  const packages = await p.stop();
  assert.ok(packages.includes('jose'), `packages: ${packages.join(', ')}`);
  assert.ok(!packages.includes('undici'), `the sidecar loaded undici: ${packages.join(', ')}`);
});

test(
  'a sidecar fed by a real control plane (--control) does not load yaml',
  { timeout: 180_000 },
  async (t) => {
    const cp = new ControlProcess(await freePort(), join(pem.path, 'control-data'));
    await cp.start();
    t.after(() => cp.kill());
    const api = new ControlClient(cp.url, {
      token: await waitForBootstrapToken(credentialsFile(cp.dataDir), cp.url),
    });
    t.after(() => api.destroy());
    const joinToken = await new JoinTokenIssuer(api, { ttlMs: 3_600_000 }).get('default', 'web', 'web-1');
    const listen = ['--inbound', '127.0.0.1:0', '--outbound', '127.0.0.1:0', '--admin', '127.0.0.1:0'];
    const p = traced(['proxy', '--control', cp.url, '--service', 'web', '--id', 'web-1', ...listen], {
      HEXMESH_JOIN_TOKEN: joinToken,
    });
    t.after(() => p.signal('SIGKILL'));
    await p.waitFor(/hexmesh proxy web \(web-1\): .* admin=\d+/);
    const admin = Number(/ admin=(\d+)/.exec(p.output())![1]);
    // Ready once the first update from the control plane is applied (config and certificate).
    const deadline = Date.now() + 120_000;
    for (;;) {
      const ready = await fetch(`http://127.0.0.1:${admin}/ready`).then(
        (r) => r.status,
        () => 0,
      );
      if (ready === 200) break;
      assert.ok(Date.now() < deadline, `never ready:\n${p.output()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const packages = await p.stop();
    assert.ok(packages.includes('ws'), `the discovery stream's client is there: ${packages.join(', ')}`);
    assert.ok(!packages.includes('yaml'), `the sidecar loaded yaml: ${packages.join(', ')}`);
  },
);
