/**
 * The injection webhook against hostile input, through a real kube-apiserver and a real
 * `hexmesh control --inject-listen`: a user who may create Pods in a meshed namespace steers the
 * injector only through the annotations docs/kubernetes.md names, and only with values it
 * checks (a bad one refuses the Pod, naming the annotation; nothing reaches the injected
 * containers raw); a hostNetwork Pod is not given the root/NET_ADMIN capture container; and
 * AdmissionReview bodies sent straight to the webhook's port get an AdmissionReview back, never
 * a crashed control plane.
 */
import assert from 'node:assert/strict';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CertificateAuthority } from '../../src/identity/ca.ts';
import {
  InjectionWebhook,
  MAX_BUFFERED_BYTES,
  MAX_REVIEW_BYTES,
  webhookConfiguration,
} from '../../src/control/kubernetes/injector.ts';
import { SqliteStore } from '../../src/store/sqlite-store.ts';
import { spawnKubeControl } from '../support/kube-control.ts';
import { KubeApiServer, kubeApiserverMissingReason } from '../support/kube-apiserver.ts';
import { until } from '../control/discovery-support.ts';

const skip = kubeApiserverMissingReason();
const OPTS = {
  image: 'hexmesh/proxy:test',
  control: ['https://hexmesh-control.hexmesh-system.svc:7070'],
  version: '0.1.0',
};

const pod = (name: string, annotations: Record<string, string> = {}, spec: Record<string, unknown> = {}) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, labels: { app: 'web' }, annotations },
  spec: { containers: [{ name: 'app', image: 'shop/web:1', ports: [{ containerPort: 8080 }] }], ...spec },
});

interface PodOut {
  spec: {
    initContainers?: { name: string; args: string[]; env?: { name: string; value?: string }[] }[];
    hostNetwork?: boolean;
  };
}

interface ReviewOut {
  apiVersion?: string;
  kind?: string;
  response?: {
    uid?: unknown;
    allowed?: boolean;
    patch?: string;
    warnings?: string[];
    status?: { code?: number; message?: string };
  };
}

/** POST a raw body to the webhook over TLS (its certificate from `caPem`). */
function postHook(
  url: string,
  caPem: string,
  body: string | Buffer,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      { method: 'POST', ca: caPem, headers: { 'content-type': 'application/json' }, timeout: 30_000 },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('webhook: no answer in 30 s')));
    req.on('error', reject);
    req.end(body);
  });
}

describe('kubernetes: the injection webhook under attack', { skip }, () => {
  let kube: KubeApiServer;
  let dir: string;
  let store: SqliteStore;
  let webhook: InjectionWebhook;
  let hookUrl: string;
  let hookCa: string;

  before(async () => {
    kube = await KubeApiServer.start();
    dir = mkdtempSync(join(tmpdir(), 'hexmesh-k8s-inj-attack-'));
    store = await SqliteStore.open(join(dir, 'hexmesh.db'), { synchronous: 'normal' });
    const ca = new CertificateAuthority(store, { dataDir: dir, trustDomain: 'hexmesh.test' });
    await ca.start();
    const serving = await ca.issueServing({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    webhook = new InjectionWebhook({ certPem: serving.certChainPem, keyPem: serving.keyPem }, OPTS);
    const a = await webhook.listen(0, '127.0.0.1');
    hookUrl = `https://127.0.0.1:${a.port}/inject`;
    hookCa = (await ca.bundle()).pem;
    await kube.must(
      'POST',
      '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations',
      webhookConfiguration({
        caBundlePem: (await ca.bundle()).pem,
        url: `https://127.0.0.1:${a.port}/inject`,
        failurePolicy: 'Fail',
      }),
    );
    await kube.must('POST', '/api/v1/namespaces', {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'meshed', labels: { 'hexmesh.io/inject': 'enabled' } },
    });
    // The API server loads webhook configurations from its informer: wait until it calls ours.
    for (let i = 0; ; i++) {
      const p = await kube.must<PodOut>('POST', '/api/v1/namespaces/meshed/pods', pod(`warm-${i}`));
      if (p.spec.initContainers) break;
      if (i > 100) throw new Error('the webhook was never called');
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  after(async () => {
    await webhook?.close();
    await store?.close();
    await kube?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const create = (name: string, annotations: Record<string, string>, spec: Record<string, unknown> = {}) =>
    kube.request('POST', '/api/v1/namespaces/meshed/pods', pod(name, annotations, spec));

  it('a bad annotation value refuses the Pod naming the annotation; none reaches a container raw', async () => {
    const cases: [string, string, RegExp][] = [
      // Newlines and shell text where hexmesh capture expects ports and CIDRs.
      ['hexmesh.io/exclude-inbound-ports', '15021\n-A OUTPUT -j ACCEPT', /a comma-separated list of ports/],
      ['hexmesh.io/exclude-inbound-ports', '99999', /a comma-separated list of ports/],
      ['hexmesh.io/exclude-outbound-ports', '$(HEXMESH_POD_IP)', /a comma-separated list of ports/],
      ['hexmesh.io/exclude-outbound-ports', Array(70).fill('5432').join(','), /at most 64 entries/],
      ['hexmesh.io/exclude-outbound-cidrs', '10.0.0.0/8\n*filter', /a comma-separated list of CIDRs/],
      ['hexmesh.io/exclude-outbound-cidrs', '10.0.0.0/8; iptables -F', /a comma-separated list of CIDRs/],
      [
        'hexmesh.io/exclude-outbound-cidrs',
        `10.0.0.0/8,${'9'.repeat(100_000)}`,
        /a comma-separated list of CIDRs/,
      ],
      // A typo must not silently mean the permissive policy, nor leave capture on/off by guess.
      ['hexmesh.io/outbound-traffic-policy', 'registry_only', /ALLOW_ANY or REGISTRY_ONLY/],
      ['hexmesh.io/capture', 'no', /"true" or "false"/],
      // The app port: a number, and not one of the proxy's own (4143 would loop into itself).
      ['hexmesh.io/app-port', '4143', /the proxy's inbound listener/],
      ['hexmesh.io/app-port', '4191', /the proxy's admin listener/],
      ['hexmesh.io/app-port', '65536', /a port number from 1 to 65535/],
      ['hexmesh.io/app-port', '8080 --control http://evil', /a port number from 1 to 65535/],
      // The service name goes on the proxy's command line: a DNS label, not anything.
      ['hexmesh.io/service', 'pay$(HEXMESH_SERVICE_ACCOUNT)', /a DNS label/],
      ['hexmesh.io/service', 'web\n--admin=0.0.0.0:4191', /a DNS label/],
      ['hexmesh.io/service', 'a'.repeat(64), /a DNS label/],
      ['hexmesh.io/proxy-semi-space-mib', '16 --inspect=0.0.0.0', /whole number of MiB from 1 to 16/],
    ];
    let n = 0;
    for (const [key, value, why] of cases) {
      const name = `bad-${n++}`;
      const r = await create(name, { [key]: value });
      assert.equal(r.status, 400, `${key}=${JSON.stringify(value.slice(0, 40))}: ${r.body.slice(0, 300)}`);
      const message = (JSON.parse(r.body) as { message: string }).message;
      assert.match(message, /hexmesh injector: annotation /);
      assert.ok(message.includes(key), `${message} names ${key}`);
      assert.match(message, why);
      assert.ok(message.length < 1000, `the message stays short (${message.length})`);
      const got = await kube.request('GET', `/api/v1/namespaces/meshed/pods/${name}`);
      assert.equal(got.status, 404, `${name} was not created`);
    }
  });

  it('good values reach the containers in a canonical form, not as written', async () => {
    const r = await create('good', {
      'hexmesh.io/exclude-inbound-ports': ' 15021 , 9901,,',
      'hexmesh.io/exclude-outbound-cidrs': '169.254.169.254/32, 10.0.0.0/8',
      'hexmesh.io/outbound-traffic-policy': 'REGISTRY_ONLY',
      'hexmesh.io/app-port': '8081',
    });
    assert.equal(r.status, 201, r.body);
    const out = JSON.parse(r.body) as PodOut;
    const [proxy, capture] = out.spec.initContainers!;
    assert.deepEqual(capture.args.slice(-4), [
      '--exclude-inbound-ports',
      '15021,9901',
      '--exclude-outbound-cidrs',
      '169.254.169.254/32,10.0.0.0/8',
    ]);
    assert.ok(proxy.args.join(' ').includes('--app-port 8081'));
    assert.ok(proxy.args.join(' ').includes('--outbound-traffic-policy REGISTRY_ONLY'));
  });

  it("a first containerPort that is one of the proxy's ports refuses the Pod", async () => {
    const r = await kube.request('POST', '/api/v1/namespaces/meshed/pods', {
      ...pod('loop'),
      spec: { containers: [{ name: 'app', image: 'shop/web:1', ports: [{ containerPort: 4143 }] }] },
    });
    assert.equal(r.status, 400, r.body);
    assert.match(r.body, /hexmesh injector: container app port 4143 is the proxy's inbound listener/);
  });

  it("the Pod's own security context does not reach the injected containers", async () => {
    // Pod-level fields apply to every container that does not set its own: the injected ones
    // set theirs, so a Pod asking for root, no seccomp or a privileged app gains nothing there.
    const r = await create(
      'rooty',
      {},
      {
        securityContext: { runAsUser: 0, runAsGroup: 0, runAsNonRoot: false },
        containers: [
          {
            name: 'app',
            image: 'shop/web:1',
            ports: [{ containerPort: 8080 }],
            securityContext: { privileged: true },
          },
        ],
      },
    );
    assert.equal(r.status, 201, r.body);
    const inits = (
      JSON.parse(r.body) as {
        spec: { initContainers: { name: string; securityContext: Record<string, unknown> }[] };
      }
    ).spec.initContainers;
    const sc = Object.fromEntries(inits.map((c) => [c.name, c.securityContext]));
    assert.deepEqual(sc['hexmesh-proxy'], {
      runAsUser: 2102,
      runAsGroup: 2102,
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
    assert.deepEqual(sc['hexmesh-capture'], {
      runAsUser: 0,
      runAsNonRoot: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW'] },
    });
  });

  it("a hostNetwork Pod is not injected: the capture container would rewrite the node's nat table", async () => {
    const r = await create('node-agent', {}, { hostNetwork: true });
    assert.equal(r.status, 201, r.body);
    const out = JSON.parse(r.body) as PodOut;
    assert.equal(out.spec.hostNetwork, true);
    assert.equal(out.spec.initContainers, undefined, 'no hexmesh-capture (root, NET_ADMIN) on the node');
  });

  it('a server-side dry run is injected (sideEffects None) and creates nothing', async () => {
    const r = await kube.request('POST', '/api/v1/namespaces/meshed/pods?dryRun=All', pod('dry'));
    assert.equal(r.status, 201, r.body);
    const out = JSON.parse(r.body) as PodOut;
    assert.equal(out.spec.initContainers?.[0].name, 'hexmesh-proxy');
    const got = await kube.request('GET', '/api/v1/namespaces/meshed/pods/dry');
    assert.equal(got.status, 404);
  });

  it('hostile AdmissionReviews straight to `hexmesh control --inject-listen`: an AdmissionReview back, the control plane lives', async () => {
    const control = spawnKubeControl(kube.kubeconfig, [
      '--inject-listen',
      '127.0.0.1:0',
      '--proxy-image',
      'hexmesh/proxy:cli',
    ]);
    try {
      const hook = await control.line(/injection webhook on (https:\/\/\S+)/, 60_000, 'webhook line');
      const api = await control.line(/listening on (http:\/\/\S+)/, 10_000, 'listening line');
      const caPem = await (await fetch(`${api}/v1/identity/bundle`)).text();
      const review = (
        request: unknown,
        head = { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' },
      ) => JSON.stringify({ ...head, request });
      const podReq = (object: unknown) => ({
        uid: 'u-1',
        kind: { kind: 'Pod' },
        operation: 'CREATE',
        object,
      });
      const nested = '['.repeat(500_000) + ']'.repeat(500_000);
      const hostile: [string, string | Buffer, RegExp | 'allowed'][] = [
        ['not JSON', '{"apiVersion":', /not JSON/],
        ['an empty object', '{}', /not an AdmissionReview/],
        [
          'v1beta1',
          review(podReq(pod('x')), { apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview' }),
          /not an AdmissionReview/,
        ],
        [
          'another kind',
          review(podReq(pod('x')), { apiVersion: 'admission.k8s.io/v1', kind: 'Pod' }),
          /not an AdmissionReview/,
        ],
        ['no uid', review({ kind: { kind: 'Pod' }, object: pod('x') }), /not an AdmissionReview/],
        [
          'initContainers a number',
          review(podReq({ ...pod('x'), spec: { containers: [{ name: 'a' }], initContainers: 5 } })),
          /not a Pod/,
        ],
        ['a null container', review(podReq({ ...pod('x'), spec: { containers: [null] } })), /not a Pod/],
        [
          'ports a number',
          review(podReq({ ...pod('x'), spec: { containers: [{ name: 'a', ports: 3 }] } })),
          /not a Pod/,
        ],
        [
          'an annotation a number',
          review(
            podReq({ ...pod('x'), metadata: { annotations: { 'hexmesh.io/exclude-inbound-ports': 80 } } }),
          ),
          /not a Pod/,
        ],
        [
          'a semi-space annotation a number',
          review(
            podReq({ ...pod('x'), metadata: { annotations: { 'hexmesh.io/proxy-semi-space-mib': 1 } } }),
          ),
          /not a Pod/,
        ],
        ['a name a number', review(podReq({ ...pod('x'), metadata: { generateName: 5 } })), /not a Pod/],
        [
          'a Service as a Pod',
          review(podReq({ apiVersion: 'v1', kind: 'Service', spec: { ports: [{ port: 80 }] } })),
          /not a Pod/,
        ],
        // JSON.parse takes any depth; nothing may walk it recursively afterwards.
        [
          'a deeply nested object',
          review(podReq({ ...pod('x'), extra: 0 })).replace('"extra":0', `"extra":${nested}`),
          'allowed',
        ],
        [
          'a Service',
          review({ uid: 'u-1', kind: { kind: 'Service' }, object: { kind: 'Service' } }),
          'allowed',
        ],
        ['5 MiB', Buffer.alloc(5 * 1024 * 1024, 0x20), /larger than/],
      ];
      for (const [what, body, expect] of hostile) {
        const r = await postHook(hook, caPem, body);
        let out: ReviewOut;
        try {
          out = JSON.parse(r.text) as ReviewOut;
        } catch {
          assert.fail(`${what}: not JSON back (${r.status} ${r.text.slice(0, 200)}); stderr: ${control.err}`);
        }
        assert.equal(out.apiVersion, 'admission.k8s.io/v1', what);
        assert.equal(out.kind, 'AdmissionReview', what);
        if (expect === 'allowed') {
          assert.equal(out.response?.allowed, true, `${what}: ${r.text.slice(0, 300)}`);
        } else {
          assert.equal(out.response?.allowed, false, `${what}: ${r.text.slice(0, 300)}`);
          assert.equal(typeof out.response?.uid, 'string', what);
          assert.match(out.response?.status?.message ?? '', expect, what);
          assert.match(out.response?.status?.message ?? '', /^hexmesh injector: /, what);
        }
      }
      // Still serving, and still injecting.
      const ok = JSON.parse((await postHook(hook, caPem, review(podReq(pod('after'))))).text) as ReviewOut;
      assert.equal(ok.response?.allowed, true);
      assert.equal(ok.response?.uid, 'u-1');
      assert.ok(ok.response?.patch, 'a patch');
      assert.equal(await control.stop(), 0, control.err);
    } finally {
      control.close();
    }
  });

  it('many large uploads at once: past the buffer budget the webhook answers 503, holding no more', async () => {
    // Uploads that never end, each just under the per-request limit: without a budget across
    // requests, each connection held 4 MiB (a few hundred of them, the control plane's heap).
    const each = MAX_REVIEW_BYTES - 1;
    const fit = Math.floor(MAX_BUFFERED_BYTES / each);
    const extra = 3;
    const statuses: number[] = [];
    const reqs = Array.from({ length: fit + extra }, () => {
      const req = https.request(hookUrl, {
        method: 'POST',
        ca: hookCa,
        headers: { 'content-type': 'application/json', 'content-length': String(each + 1) },
      });
      req.on('response', (res) => {
        statuses.push(res.statusCode ?? 0);
        res.resume();
      });
      req.on('error', () => {});
      req.write(Buffer.alloc(each, 0x20));
      return req;
    });
    try {
      await until(() => (statuses.length >= extra ? true : undefined), 60_000, `${extra} answers`);
      assert.deepEqual(
        statuses.filter((x) => x !== 503),
        [],
        'only 503s',
      );
    } finally {
      for (const r of reqs) r.destroy();
    }
    // The budget is given back: a review is answered again.
    const ok = await postHook(
      hookUrl,
      hookCa,
      JSON.stringify({
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        request: { uid: 'u-9', kind: { kind: 'Pod' }, operation: 'CREATE', object: pod('after-flood') },
      }),
    );
    assert.equal(ok.status, 200, ok.text);
    assert.ok((JSON.parse(ok.text) as ReviewOut).response?.patch);
  });

  it('a connection that never finishes its TLS handshake, or never sends a request, is cut within seconds', async () => {
    const port = Number(new URL(hookUrl).port);
    const closedAfter = (socket: net.Socket) =>
      new Promise<number>((resolve) => {
        const t0 = Date.now();
        socket.on('error', () => {});
        socket.once('close', () => resolve(Date.now() - t0));
      });
    // TCP only: without a handshake timeout of its own, TLS waits 120 s.
    const raw = net.connect(port, '127.0.0.1');
    // A finished handshake, then nothing.
    const idle = tls.connect({ port, host: '127.0.0.1', ca: hookCa, servername: 'localhost' });
    try {
      const [a, b] = await Promise.all([closedAfter(raw), closedAfter(idle)]);
      assert.ok(a < 15_000, `no handshake: cut after ${a} ms`);
      assert.ok(b < 15_000, `no request: cut after ${b} ms`);
    } finally {
      raw.destroy();
      idle.destroy();
    }
  });
});
