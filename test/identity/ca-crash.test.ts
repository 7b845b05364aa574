/**
 * The CA across crashes, with real `hexmesh control` processes over one data dir: a control
 * plane SIGKILLed in the middle of a root rotation (after the new authority is in the store,
 * before its files are on disk) and after finishing it restarts with a bundle that still
 * trusts every certificate in use (no mesh-wide outage); a missing or wrong seal key stops
 * start-up with an error naming it, and never gets the CA regenerated.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { readdirSync, readFileSync, renameSync, watch, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createKeyAndCsr, renewalSignature } from '../../src/identity/csr.ts';
import { call } from '../control/helpers.ts';
import { opensslVerify, tempDir } from './helpers.ts';

const BIN = join(import.meta.dirname, '../../bin/hexmesh.js');

interface Control {
  child: ChildProcess;
  url: string;
  admin: Record<string, string>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Run `hexmesh control` over `data`; resolves once it listens, or with its output if it exits first. */
function control(
  data: string,
  env: Record<string, string> = {},
): Promise<Control | { exit: number; out: string }> {
  const child = spawn(process.execPath, [BIN, 'control', '--listen', '127.0.0.1:0', '--data-dir', data], {
    env: { ...process.env, HEXMESH_CA_KEY_SECRET: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const exited = new Promise<number>((r) => child.once('exit', (code, sig) => r(code ?? (sig ? 128 : -1))));
  const kill = async (signal: NodeJS.Signals = 'SIGKILL') => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void kill();
      reject(new Error(`hexmesh control did not start within 60 s: ${out}`));
    }, 60_000);
    const onData = (d: Buffer) => {
      out += d;
      const m = /listening on (http\S+)/.exec(out);
      if (!m) return;
      clearTimeout(timer);
      const creds = JSON.parse(readFileSync(join(data, 'credentials.json'), 'utf8')) as {
        contexts: { token: string }[];
      };
      resolve({ child, url: m[1], admin: { authorization: `Bearer ${creds.contexts[0].token}` }, kill });
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    void exited.then((exit) => {
      clearTimeout(timer);
      resolve({ exit, out });
    });
  });
}

async function started(data: string, env?: Record<string, string>): Promise<Control> {
  const c = await control(data, env);
  assert.ok('child' in c, `hexmesh control exited ${'exit' in c ? `${c.exit}: ${c.out}` : ''}`);
  return c;
}

interface Cert {
  chain: string;
  key: string;
}

async function certificate(c: Control, body: Record<string, unknown>): Promise<Cert> {
  const kc = await createKeyAndCsr();
  const r = await call(c.url, 'POST', '/v1/identity/certificate', { csr: kc.csrPem, ...body });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return { chain: r.body.certChainPem as string, key: kc.keyPem };
}

async function renewal(c: Control, current: Cert, proxyId: string) {
  const kc = await createKeyAndCsr();
  const r = await call(c.url, 'POST', '/v1/identity/certificate', {
    csr: kc.csrPem,
    proxyId,
    renewal: { certificate: current.chain, signature: renewalSignature(current.key, kc.csrPem) },
  });
  return { status: r.status, body: r.body, cert: { chain: r.body.certChainPem as string, key: kc.keyPem } };
}

async function bundle(c: Control): Promise<{ pem: string; active: string; roots: string[] }> {
  const b = await call(c.url, 'GET', '/v1/identity/bundle?format=json');
  assert.equal(b.status, 200);
  return { pem: (b.body.roots as string[]).join(''), active: b.body.active, roots: b.body.roots };
}

test(
  'a control plane SIGKILLed mid-rotation and after finishing it restarts trusting every certificate in use',
  { timeout: 240_000 },
  async (t) => {
    const d = await tempDir();
    const data = join(d.dir, 'data');
    let cp = await started(data);
    try {
      const token = (
        await call(
          cp.url,
          'POST',
          '/v1/identity/tokens',
          { namespace: 'shop', serviceAccount: 'web', ttl: '1h' },
          cp.admin,
        )
      ).body.token as string;
      const before = await bundle(cp);
      const old = await certificate(cp, { token, proxyId: 'web-1' });

      // Rotation start, killed the moment the new authority's directory appears: the store
      // write is done, its root and intermediate files are not.
      const caDir = join(data, 'ca');
      let refused: (e: Error) => void = () => {};
      const made = new Promise<string>((resolve, reject) => {
        const w = watch(caDir, (_event, name) => {
          if (name && name !== before.active) {
            w.close();
            void cp.kill().then(() => resolve(name));
          }
        });
        refused = (e) => {
          w.close();
          reject(e);
        };
      });
      const start = call(cp.url, 'POST', '/v1/identity/rotation/start', undefined, cp.admin).catch(
        (e: Error) => e,
      );
      // A refused start makes no directory: fail now rather than wait for one.
      void start.then((r) => {
        if (!(r instanceof Error) && r.status !== 200)
          refused(new Error(`rotation start: ${r.status} ${JSON.stringify(r.body)}`));
      });
      const newId = await made;
      const answered = await start;
      t.diagnostic(
        `killed ${answered instanceof Error ? 'before answering' : 'after answering'}; new authority's files on disk: ${readdirSync(join(caDir, newId)).join(', ') || 'none'}`,
      );

      cp = await started(data);
      const mid = await bundle(cp);
      assert.equal(mid.active, newId, 'the new authority signs');
      assert.equal(mid.roots.length, 2, 'both roots are trusted');
      assert.ok(mid.roots.includes(before.roots[0]));
      // The certificate in use still verifies (openssl, against the served bundle).
      const v = await opensslVerify(d.dir, mid.pem, old.chain);
      assert.ok(v.ok, `old certificate after the crash: ${v.out}`);
      // New ones come from the new authority and verify too; the old one renews onto it.
      const fresh = await certificate(cp, { token, proxyId: 'web-2' });
      assert.ok((await opensslVerify(d.dir, mid.pem, fresh.chain)).ok);
      const status = await call(cp.url, 'GET', '/v1/identity/rotation', undefined, cp.admin);
      assert.equal(status.body.rotating, true);
      assert.deepEqual(
        status.body.pending.map((p: { proxyId: string }) => p.proxyId),
        ['web-1'],
      );
      assert.equal(
        (await call(cp.url, 'POST', '/v1/identity/rotation/finish', undefined, cp.admin)).status,
        409,
        'finish refused while web-1 is on the old root',
      );
      const renewed = await renewal(cp, old, 'web-1');
      assert.equal(renewed.status, 200, JSON.stringify(renewed.body));
      assert.ok((await opensslVerify(d.dir, mid.pem, renewed.cert.chain)).ok);

      // Finish, then SIGKILL: the restart serves the new root only, which every live certificate uses.
      const fin = await call(cp.url, 'POST', '/v1/identity/rotation/finish', undefined, cp.admin);
      assert.equal(fin.status, 200, JSON.stringify(fin.body));
      await cp.kill();
      cp = await started(data);
      const after = await bundle(cp);
      assert.deepEqual(after.roots, [mid.roots[0]]);
      for (const c of [fresh, renewed.cert]) {
        const ok = await opensslVerify(d.dir, after.pem, c.chain);
        assert.ok(ok.ok, ok.out);
        assert.equal((await renewal(cp, c, 'web-2')).status, 200);
      }
      assert.equal((await renewal(cp, old, 'web-1')).status, 401, 'the dropped root renews nothing');
    } finally {
      await cp.kill();
      await d.close();
    }
  },
);

test(
  'a missing or wrong seal key stops hexmesh control naming it; the CA is never regenerated',
  { timeout: 240_000 },
  async () => {
    const d = await tempDir();
    const data = join(d.dir, 'data');
    const sealFile = join(data, 'ca-seal.key');
    let cp = await started(data);
    try {
      const token = (
        await call(
          cp.url,
          'POST',
          '/v1/identity/tokens',
          { namespace: 'shop', serviceAccount: 'web', ttl: '1h' },
          cp.admin,
        )
      ).body.token as string;
      const first = await bundle(cp);
      const cert = await certificate(cp, { token, proxyId: 'web-1' });
      await cp.kill('SIGTERM');

      const refused = async (env: Record<string, string>, why: RegExp) => {
        const r = await control(data, env);
        if ('child' in r) {
          await r.kill();
          assert.fail(`hexmesh control started (${why}): it must refuse`);
        }
        assert.notEqual(r.exit, 0);
        assert.match(r.out, why);
        assert.doesNotMatch(r.out, /listening on/);
      };
      // Missing: refused, naming the file; no new key is made in its place.
      renameSync(sealFile, `${sealFile}.away`);
      await refused({}, /ca-seal\.key: copy it from the replica that created the CA/);
      assert.throws(() => readFileSync(sealFile), /ENOENT/, 'no seal key was made up');
      // Another key in its place: refused as the wrong secret, and the file is left as it is.
      const wrong = `${randomBytes(32).toString('base64url')}\n`;
      writeFileSync(sealFile, wrong, { mode: 0o600 });
      await refused({}, /cannot unseal the CA key in the store: wrong CA key secret/);
      assert.equal(readFileSync(sealFile, 'utf8'), wrong);
      // The right file, overridden by a wrong operator secret: refused too.
      renameSync(`${sealFile}.away`, sealFile);
      await refused({ HEXMESH_CA_KEY_SECRET: 'not-the-secret' }, /wrong CA key secret/);

      // With the right key: the same CA as before (same roots), and its certificate renews.
      cp = await started(data);
      const again = await bundle(cp);
      assert.deepEqual(again.roots, first.roots);
      assert.equal(again.active, first.active);
      const renewed = await renewal(cp, cert, 'web-1');
      assert.equal(renewed.status, 200, JSON.stringify(renewed.body));
      assert.equal(
        new X509Certificate(renewed.cert.chain).issuer,
        new X509Certificate(cert.chain).issuer,
        'signed by the same intermediate',
      );
    } finally {
      await cp.kill();
      await d.close();
    }
  },
);
