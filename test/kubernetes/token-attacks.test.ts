/**
 * ServiceAccount tokens abused against the certificate door, with a real kube-apiserver: a
 * token bound to a Pod buys nothing once the Pod is gone (after the API server's 10 s token
 * cache); a token of another ServiceAccount
 * cannot be bound to this one's Pod, and a token's identity is its ServiceAccount whatever Pod
 * it names; and what is not a JWT at all never costs the API server a TokenReview (the
 * certificate endpoint is public: each token sent there used to be one request to it).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TokenReviewer } from '../../src/control/kubernetes/token-review.ts';
import { CertificateAuthority } from '../../src/identity/ca.ts';
import { createKeyAndCsr, renewalSignature } from '../../src/identity/csr.ts';
import { SqliteStore } from '../../src/store/sqlite-store.ts';
import { KubeApiServer, kubeApiserverMissingReason } from '../support/kube-apiserver.ts';
import { until } from '../control/discovery-support.ts';

const skip = kubeApiserverMissingReason();
const TD = 'hexmesh.test';

describe('kubernetes: ServiceAccount token abuse', { skip }, () => {
  let kube: KubeApiServer;
  let dir: string;
  let store: SqliteStore;
  let ca: CertificateAuthority;
  let reviewer: TokenReviewer;

  const tokenRequest = (sa: string, pod?: { name: string; uid: string }) =>
    kube.request('POST', `/api/v1/namespaces/shop/serviceaccounts/${sa}/token`, {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: {
        audiences: ['hexmesh'],
        expirationSeconds: 600,
        ...(pod && { boundObjectRef: { kind: 'Pod', apiVersion: 'v1', ...pod } }),
      },
    });
  const token = async (sa: string, pod?: { name: string; uid: string }) => {
    const r = await tokenRequest(sa, pod);
    assert.equal(r.status, 201, r.body);
    return (JSON.parse(r.body) as { status: { token: string } }).status.token;
  };
  const createPod = async (name: string, sa: string) =>
    (
      await kube.must<{ metadata: { name: string; uid: string } }>('POST', '/api/v1/namespaces/shop/pods', {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name },
        spec: { serviceAccountName: sa, containers: [{ name: 'app', image: 'shop/app:1' }] },
      })
    ).metadata;
  /** TokenReviews the API server has answered so far (its own request counter). */
  const tokenReviews = async () => {
    const r = await kube.request('GET', '/metrics', undefined, { accept: 'text/plain' });
    assert.equal(r.status, 200);
    let n = 0;
    for (const line of r.body.split('\n'))
      if (line.startsWith('apiserver_request_total{') && line.includes('resource="tokenreviews"'))
        n += Number(line.slice(line.lastIndexOf(' ') + 1));
    return n;
  };

  before(async () => {
    kube = await KubeApiServer.start();
    dir = mkdtempSync(join(tmpdir(), 'hexmesh-k8s-token-'));
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

  it("a token bound to a Pod buys its ServiceAccount's identity, and nothing once the Pod is deleted", async () => {
    const pod = await createPod('web-1', 'web');
    const t = await token('web', pod);
    assert.deepEqual(await reviewer.review(t), { namespace: 'shop', serviceAccount: 'web', pod: 'web-1' });
    await kube.must('DELETE', '/api/v1/namespaces/shop/pods/web-1?gracePeriodSeconds=0');
    // The API server keeps a token's authentication for 10 s (its token cache): refused after.
    const t0 = Date.now();
    await until(async () => ((await reviewer.review(t)) === undefined ? true : undefined), 20_000, 'refused');
    assert.ok(Date.now() - t0 < 15_000, `refused ${Date.now() - t0} ms after the Pod was deleted`);
    const { csrPem } = await createKeyAndCsr({ spiffeId: `spiffe://${TD}/ns/shop/sa/web` });
    await assert.rejects(ca.sign({ csr: csrPem, token: t }), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'HEXMESH_ERR_UNAUTHENTICATED');
      return true;
    });
  });

  it("a token of another ServiceAccount cannot name this one's Pod; a token's identity is its own account", async () => {
    const pod = await createPod('web-2', 'web');
    const refused = await tokenRequest('db', pod);
    assert.equal(refused.status, 400, refused.body);
    assert.match(refused.body, /different service ?account/i);
    // db's own token, whatever it is used for, is db: never web's certificate.
    const dbToken = await token('db');
    const { csrPem } = await createKeyAndCsr({ spiffeId: `spiffe://${TD}/ns/shop/sa/web` });
    await assert.rejects(
      ca.sign({ csr: csrPem, token: dbToken }),
      /asks for spiffe:\/\/hexmesh\.test\/ns\/shop\/sa\/web/,
    );
  });

  it('what is not a JWT never reaches the API server', async () => {
    const before = await tokenReviews();
    for (const junk of [
      'not-a-token',
      'a.b',
      'a.b.c.d',
      `eyJhbGciOiJSUzI1NiJ9.${'A'.repeat(1024 * 1024)}.sig`,
      'eyJ.eyJ.sig\n',
      'eyJ hbG.eyJ.sig',
      '',
    ]) {
      assert.equal(await reviewer.review(junk), undefined, JSON.stringify(junk.slice(0, 40)));
      const { csrPem } = await createKeyAndCsr();
      await assert.rejects(ca.sign({ csr: csrPem, token: junk || 'x' }), /platform token was not accepted/);
    }
    assert.equal(await tokenReviews(), before, 'no TokenReview was sent for any of them');
    // The counter counts: a real token is one review.
    assert.ok(await reviewer.review(await token('web')).then(() => true));
    assert.equal(await tokenReviews(), before + 1);
  });

  // A certificate got with a ServiceAccount token is not its own proof: its renewal asks for a
  // fresh token (a TokenReview), so deleting the Pod or the ServiceAccount ends the line.
  it("a certificate got with a Pod's token renews only with a fresh token: a deleted Pod's line ends", async () => {
    const pod = await createPod('web-3', 'web');
    const first = await createKeyAndCsr();
    const issued = await ca.sign({ csr: first.csrPem, token: await token('web', pod) });
    const byCertificate = async (cur: { certChainPem: string }, key: string) => {
      const next = await createKeyAndCsr();
      return ca.sign({
        csr: next.csrPem,
        renewal: { certificate: cur.certChainPem, signature: renewalSignature(key, next.csrPem) },
      });
    };
    // The certificate alone does not renew, even while the Pod stands...
    await assert.rejects(byCertificate(issued, first.keyPem), /renews with a fresh token/);
    // ...a fresh token of the standing Pod does (the proxy sends its token file's on that 401).
    const again = await ca.sign({ csr: (await createKeyAndCsr()).csrPem, token: await token('web', pod) });
    assert.equal(again.spiffeId, issued.spiffeId);
    await kube.must('DELETE', '/api/v1/namespaces/shop/pods/web-3?gracePeriodSeconds=0');
    await kube.must('DELETE', '/api/v1/namespaces/shop/serviceaccounts/web');
    await assert.rejects(byCertificate(issued, first.keyPem), /renews with a fresh token/);
  });
});
