/**
 * Workload identity from Kubernetes against a real kube-apiserver: a ServiceAccount token
 * minted by the API server (TokenRequest, audience hexmesh) buys a certificate for
 * `spiffe://<td>/ns/<ns>/sa/<sa>` — its own ServiceAccount's, never another's — checked by
 * TokenReview; tokens of another audience or of a deleted ServiceAccount buy nothing.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ControlPlane } from '../../src/control/control-plane.ts';
import { TokenReviewer } from '../../src/control/kubernetes/token-review.ts';
import { CertificateAuthority } from '../../src/identity/ca.ts';
import { ControlIdentitySource } from '../../src/identity/control-identity-source.ts';
import { createKeyAndCsr } from '../../src/identity/csr.ts';
import { certInfo } from '../../src/identity/x509.ts';
import { SqliteStore } from '../../src/store/sqlite-store.ts';
import { KubeApiServer, kubeApiserverMissingReason } from '../support/kube-apiserver.ts';

const skip = kubeApiserverMissingReason();
const TD = 'hexmesh.test';

describe('kubernetes: ServiceAccount tokens checked by TokenReview', { skip }, () => {
  let kube: KubeApiServer;
  let dir: string;
  let store: SqliteStore;
  let ca: CertificateAuthority;
  let reviewer: TokenReviewer;

  const token = async (sa: string, audiences?: string[]) =>
    (
      await kube.must<{ status: { token: string } }>(
        'POST',
        `/api/v1/namespaces/shop/serviceaccounts/${sa}/token`,
        {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenRequest',
          spec: { ...(audiences ? { audiences } : {}), expirationSeconds: 600 },
        },
      )
    ).status.token;

  before(async () => {
    kube = await KubeApiServer.start();
    dir = mkdtempSync(join(tmpdir(), 'hexmesh-k8s-id-'));
    store = await SqliteStore.open(join(dir, 'hexmesh.db'), { synchronous: 'normal' });
    reviewer = await TokenReviewer.load(kube.kubeconfig);
    ca = new CertificateAuthority(store, {
      dataDir: dir,
      trustDomain: TD,
      platformToken: (t) => reviewer.review(t),
    });
    await ca.start();
    await kube.must('POST', '/api/v1/namespaces', {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'shop' },
    });
    for (const sa of ['web', 'db'])
      await kube.must('POST', '/api/v1/namespaces/shop/serviceaccounts', {
        apiVersion: 'v1',
        kind: 'ServiceAccount',
        metadata: { name: sa },
      });
  });

  after(async () => {
    await store?.close();
    await kube?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('TokenReview names the ServiceAccount of a hexmesh-audience token', async () => {
    assert.deepEqual(await reviewer.review(await token('web', ['hexmesh'])), {
      namespace: 'shop',
      serviceAccount: 'web',
    });
  });

  it('a certificate request with its own ServiceAccount token succeeds', async () => {
    const { csrPem } = await createKeyAndCsr({ spiffeId: `spiffe://${TD}/ns/shop/sa/web` });
    const issued = await ca.sign({ csr: csrPem, token: await token('web', ['hexmesh']), proxyId: 'web-1' });
    assert.equal(issued.spiffeId, `spiffe://${TD}/ns/shop/sa/web`);
    assert.deepEqual(certInfo(issued.certChainPem).uris, [`spiffe://${TD}/ns/shop/sa/web`]);
    // Without a requested ID the token's identity is granted.
    const bare = await createKeyAndCsr();
    assert.equal(
      (await ca.sign({ csr: bare.csrPem, token: await token('db', ['hexmesh']) })).spiffeId,
      `spiffe://${TD}/ns/shop/sa/db`,
    );
  });

  it('a certificate for another ServiceAccount is refused', async () => {
    const { csrPem } = await createKeyAndCsr({ spiffeId: `spiffe://${TD}/ns/shop/sa/db` });
    await assert.rejects(
      ca.sign({ csr: csrPem, token: await token('web', ['hexmesh']) }),
      (e: Error & { code?: string }) => {
        assert.equal(e.code, 'HEXMESH_ERR_DENIED');
        assert.match(e.message, /asks for spiffe:\/\/hexmesh\.test\/ns\/shop\/sa\/db/);
        return true;
      },
    );
  });

  it('through the control plane API: POST /v1/identity/certificate with the token (auth enforced)', async () => {
    const cp = new ControlPlane({
      listen: { address: '127.0.0.1', port: 0 },
      store,
      identity: { dataDir: dir, trustDomain: TD, platformToken: (t) => reviewer.review(t) },
      auth: { mode: 'enforce' },
      dashboard: false,
    });
    const { port } = await cp.start();
    try {
      const post = async (spiffeId: string) => {
        const { csrPem } = await createKeyAndCsr({ spiffeId });
        const r = await fetch(`http://127.0.0.1:${port}/v1/identity/certificate`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ csr: csrPem, token: await token('web', ['hexmesh']), proxyId: 'web-2' }),
        });
        return {
          status: r.status,
          body: (await r.json()) as { spiffeId?: string; error?: { code?: string } },
        };
      };
      const own = await post(`spiffe://${TD}/ns/shop/sa/web`);
      assert.equal(own.status, 200, JSON.stringify(own.body));
      assert.equal(own.body.spiffeId, `spiffe://${TD}/ns/shop/sa/web`);
      const other = await post(`spiffe://${TD}/ns/shop/sa/db`);
      assert.equal(other.status, 403, JSON.stringify(other.body));
    } finally {
      await cp.close();
    }
  });

  it("a sidecar's --token-file is read at each request: a rotated token is the one sent (issue 13)", async () => {
    const cp = new ControlPlane({
      listen: { address: '127.0.0.1', port: 0 },
      store,
      identity: { dataDir: dir, trustDomain: TD, platformToken: (t) => reviewer.review(t) },
      auth: { mode: 'enforce' },
      dashboard: false,
    });
    const { port } = await cp.start();
    // As the kubelet writes a projected token: a new file renamed over the old one.
    const file = join(dir, 'token');
    const put = (t: string) => {
      writeFileSync(`${file}.new`, t);
      renameSync(`${file}.new`, file);
    };
    // First the wrong audience (the API server's own): refused, retried.
    put(await token('web'));
    const logs: string[] = [];
    const source = new ControlIdentitySource({
      urls: [`http://127.0.0.1:${port}`],
      tokenFile: file,
      retryBaseMs: 50,
      retryMaxMs: 200,
      log: (l) => logs.push(l),
    });
    try {
      source.start();
      const deadline = Date.now() + 20_000;
      while (!logs.some((l) => l.includes('certificate request failed')) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      assert.ok(
        logs.some((l) => l.includes('certificate request failed')),
        logs.join('\n'),
      );
      assert.equal(source.current(), undefined);
      // Rotated to a hexmesh-audience token: the next retry reads it and gets the certificate.
      put(await token('web', ['hexmesh']));
      await source.ready(AbortSignal.timeout(20_000));
      assert.equal(source.current()?.spiffeId, `spiffe://${TD}/ns/shop/sa/web`);
      // Never logged: the token itself.
      assert.ok(!logs.some((l) => l.includes('eyJ')), 'a token reached the log');
    } finally {
      source.close();
      await cp.close();
    }
  });

  it('a token of another audience, or of a deleted ServiceAccount, buys nothing', async () => {
    const apiAudience = await token('web');
    assert.equal(await reviewer.review(apiAudience), undefined);
    const { csrPem } = await createKeyAndCsr();
    await assert.rejects(ca.sign({ csr: csrPem, token: apiAudience }), /platform token was not accepted/);
    const dbToken = await token('db', ['hexmesh']);
    await kube.must('DELETE', '/api/v1/namespaces/shop/serviceaccounts/db');
    assert.equal(await reviewer.review(dbToken), undefined);
    assert.equal(await reviewer.review('not-a-token'), undefined);
  });
});
