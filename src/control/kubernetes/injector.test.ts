import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  admissionResponse,
  injectionPatch,
  podAppPort,
  podService,
  proxySemiSpaceMiB,
  skipReason,
  type Pod,
} from './injector.ts';

const OPTS = { image: 'hexmesh/proxy:test', control: ['http://cp:7070'], version: '0.1.0' };
const HEAD = { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' };
const pod = (p: Pod['metadata'] = {}, spec: Pod['spec'] = { containers: [{ name: 'app' }] }): Pod => ({
  metadata: p,
  spec,
});

describe('kubernetes injector', () => {
  it('finds the service: annotation, app labels, then the name stem of a ReplicaSet pod', () => {
    assert.equal(
      podService(pod({ annotations: { 'hexmesh.io/service': 'shop' }, labels: { app: 'x' } })),
      'shop',
    );
    assert.equal(podService(pod({ labels: { 'app.kubernetes.io/name': 'cart', app: 'x' } })), 'cart');
    assert.equal(podService(pod({ labels: { app: 'Web_UI' } })), 'web-ui');
    assert.equal(podService(pod({ generateName: 'reviews-v2-7d9f8b6c4-' })), 'reviews-v2');
    assert.equal(podService(pod({ name: 'db' })), 'db');
  });

  it('finds the app port: annotation, else the first TCP containerPort', () => {
    assert.equal(podAppPort(pod({ annotations: { 'hexmesh.io/app-port': '9000' } })), 9000);
    assert.equal(
      podAppPort(
        pod(
          {},
          {
            containers: [
              { name: 'a', ports: [{ containerPort: 53, protocol: 'UDP' }, { containerPort: 8080 }] },
            ],
          },
        ),
      ),
      8080,
    );
    assert.equal(podAppPort(pod()), undefined);
  });

  it('skips opted-out and already injected pods', () => {
    assert.match(skipReason(pod({ annotations: { 'hexmesh.io/inject': 'false' } }))!, /annotation/);
    assert.match(skipReason(pod({ labels: { 'hexmesh.io/inject': 'disabled' } }))!, /label/);
    assert.equal(
      skipReason(pod({}, { containers: [{ name: 'app' }], initContainers: [{ name: 'hexmesh-proxy' }] })),
      'already injected',
    );
    assert.equal(skipReason(pod()), undefined);
  });

  it('patches in a native sidecar first among the init containers, and the annotation', () => {
    const ops = injectionPatch(
      pod(
        { annotations: { a: 'b' } },
        { containers: [{ name: 'app' }], initContainers: [{ name: 'migrate' }] },
      ),
      OPTS,
    );
    assert.deepEqual(
      ops.map((o) => o.path),
      [
        '/spec/initContainers/0',
        '/spec/initContainers/1',
        '/spec/volumes',
        '/spec/serviceAccountName',
        '/metadata/annotations/hexmesh.io~1injected',
      ],
    );
    const c = ops[0].value as { restartPolicy: string; securityContext: { runAsUser: number } };
    assert.equal(c.restartPolicy, 'Always');
    assert.equal(c.securityContext.runAsUser, 2102);
    assert.deepEqual(
      injectionPatch(pod(), OPTS).map((o) => o.path),
      ['/spec/initContainers', '/spec/volumes', '/spec/serviceAccountName', '/metadata/annotations'],
    );
  });

  it('mounts a projected ServiceAccount token (audience hexmesh) the proxy reads with --token-file', () => {
    const ops = injectionPatch(pod({}, { containers: [{ name: 'app' }], volumes: [{ name: 'data' }] }), OPTS);
    const vol = ops.find((o) => o.path === '/spec/volumes/-')?.value as {
      name: string;
      projected: { sources: { serviceAccountToken: { audience: string; path: string } }[] };
    };
    assert.equal(vol.name, 'hexmesh-token');
    assert.equal(vol.projected.sources[0].serviceAccountToken.audience, 'hexmesh');
    const proxy = (
      ops[0].value as { args: string[]; volumeMounts: { name: string; mountPath: string }[] }[]
    )[0];
    const i = proxy.args.indexOf('--token-file');
    assert.equal(proxy.args[i + 1], '/var/run/secrets/hexmesh/token');
    assert.deepEqual(
      proxy.volumeMounts.map((m) => [m.name, m.mountPath]),
      [['hexmesh-token', '/var/run/secrets/hexmesh']],
    );
  });

  it('adds the capture init container after the proxy, with the exclusions of the annotations (issue 13)', () => {
    const ops = injectionPatch(
      pod(
        {
          annotations: {
            'hexmesh.io/exclude-inbound-ports': '9901, 15021',
            'hexmesh.io/exclude-outbound-cidrs': '169.254.169.254/32',
            'hexmesh.io/outbound-traffic-policy': 'REGISTRY_ONLY',
          },
        },
        { containers: [{ name: 'app', ports: [{ containerPort: 8080 }] }] },
      ),
      OPTS,
    );
    const [proxy, capture] = ops[0].value as {
      name: string;
      args: string[];
      restartPolicy?: string;
      securityContext: { runAsUser: number; capabilities: { add?: string[] } };
    }[];
    assert.equal(proxy.name, 'hexmesh-proxy');
    assert.deepEqual(proxy.args.slice(-3), ['--capture', '--outbound-traffic-policy', 'REGISTRY_ONLY']);
    assert.equal(capture.name, 'hexmesh-capture');
    assert.equal(capture.restartPolicy, undefined, 'runs once, to completion');
    assert.equal(capture.securityContext.runAsUser, 0);
    assert.deepEqual(capture.securityContext.capabilities.add, ['NET_ADMIN', 'NET_RAW']);
    assert.deepEqual(capture.args, [
      'capture',
      '--proxy-uid',
      '2102',
      '--inbound-port',
      '4143',
      '--outbound-port',
      '4140',
      '--exclude-inbound-ports',
      '9901,15021',
      '--exclude-outbound-cidrs',
      '169.254.169.254/32',
    ]);
    // Opted out of capture: the proxy alone, without --capture.
    const plain = injectionPatch(pod({ annotations: { 'hexmesh.io/capture': 'false' } }), OPTS);
    const only = plain[0].value as { name: string; args: string[] }[];
    assert.deepEqual(
      only.map((c) => c.name),
      ['hexmesh-proxy'],
    );
    assert.ok(!only[0].args.includes('--capture'));
  });

  it('answers AdmissionReview with a base64 JSON Patch, or allows without one', () => {
    const review = (object: Pod) => ({ ...HEAD, request: { uid: 'u1', kind: { kind: 'Pod' }, object } });
    const r = admissionResponse(review(pod()), OPTS) as {
      response: { uid: string; patchType: string; patch: string };
    };
    assert.equal(r.response.uid, 'u1');
    assert.equal(r.response.patchType, 'JSONPatch');
    assert.equal((JSON.parse(Buffer.from(r.response.patch, 'base64').toString()) as unknown[]).length, 4);
    const skipped = admissionResponse(
      review(pod({ annotations: { 'hexmesh.io/inject': 'false' } })),
      OPTS,
    ) as {
      response: Record<string, unknown>;
    };
    assert.deepEqual(skipped.response, { uid: 'u1', allowed: true });
  });

  it('passes a young-generation limit to the proxy by annotation, and refuses a bad one', () => {
    const env = (p: Pod) =>
      (
        (injectionPatch(p, OPTS)[0].value as { name: string; env: { name: string; value?: string }[] }[])[0]
          .env as { name: string; value?: string }[]
      ).filter((e) => e.name === 'NODE_OPTIONS');
    assert.deepEqual(env(pod()), [], 'V8 default without the annotation');
    assert.deepEqual(env(pod({ annotations: { 'hexmesh.io/proxy-semi-space-mib': ' 1 ' } })), [
      { name: 'NODE_OPTIONS', value: '--max-semi-space-size=1' },
    ]);
    assert.equal(proxySemiSpaceMiB(pod({ annotations: { 'hexmesh.io/proxy-semi-space-mib': '16' } })), 16);
    const review = (object: Pod) => ({ ...HEAD, request: { uid: 'u2', kind: { kind: 'Pod' }, object } });
    for (const bad of ['0', '17', '1.5', '-1', '2MiB', '', '1e1', '--inspect']) {
      const r = admissionResponse(
        review(pod({ annotations: { 'hexmesh.io/proxy-semi-space-mib': bad } })),
        OPTS,
      ) as {
        response: {
          uid: string;
          allowed: boolean;
          patch?: string;
          status: { code: number; message: string };
        };
      };
      assert.equal(r.response.allowed, false, `refused: ${JSON.stringify(bad)}`);
      assert.equal(r.response.uid, 'u2');
      assert.equal(r.response.patch, undefined);
      assert.equal(r.response.status.code, 400);
      assert.match(
        r.response.status.message,
        /hexmesh\.io\/proxy-semi-space-mib: expected a whole number of MiB from 1 to 16, got/,
      );
    }
    // An opted-out pod is left alone whatever its annotations say.
    const skipped = admissionResponse(
      review(pod({ annotations: { 'hexmesh.io/inject': 'false', 'hexmesh.io/proxy-semi-space-mib': 'x' } })),
      OPTS,
    ) as { response: Record<string, unknown> };
    assert.deepEqual(skipped.response, { uid: 'u2', allowed: true });
  });

  it('refuses a review or Pod of the wrong shape with an AdmissionReview, never a throw', () => {
    const answer = (review: unknown) =>
      admissionResponse(review, OPTS) as {
        kind: string;
        response: { uid: string; allowed: boolean; status?: { code: number; message: string } };
      };
    const req = (object: unknown) => ({ ...HEAD, request: { uid: 'u3', kind: { kind: 'Pod' }, object } });
    for (const [review, why] of [
      [null, /not an AdmissionReview/],
      [{ request: { uid: 'u3', kind: { kind: 'Pod' }, object: pod() } }, /apiVersion/],
      [{ ...HEAD, request: { kind: { kind: 'Pod' }, object: pod() } }, /request\.uid/],
      [req({ spec: { containers: [{ name: 'a' }], initContainers: 5 } }), /not a Pod: spec\.initContainers/],
      [req({ spec: { containers: [null] } }), /not a Pod: spec\.containers\.0/],
      [req({ metadata: { annotations: { 'hexmesh.io/proxy-semi-space-mib': 1 } } }), /not a Pod/],
      [req({ kind: 'Service', spec: {} }), /not a Pod: kind/],
    ] as const) {
      const r = answer(review);
      assert.equal(r.kind, 'AdmissionReview');
      assert.equal(r.response.allowed, false);
      assert.equal(r.response.status?.code, 400);
      assert.match(r.response.status!.message, why);
    }
    // Not a Pod, or not a CREATE: allowed as it is.
    const svc = answer({ ...HEAD, request: { uid: 'u4', kind: { kind: 'Service' }, object: {} } });
    assert.equal(svc.response.allowed, true);
    const update = answer({
      ...HEAD,
      request: { uid: 'u5', kind: { kind: 'Pod' }, operation: 'UPDATE', object: pod() },
    }) as { response: Record<string, unknown> };
    assert.deepEqual(update.response, { uid: 'u5', allowed: true });
  });

  it('does not inject a hostNetwork Pod, and says so', () => {
    const hostPod = pod({}, { containers: [{ name: 'app' }], hostNetwork: true });
    assert.match(skipReason(hostPod)!, /hostNetwork/);
    const r = admissionResponse(
      { ...HEAD, request: { uid: 'u6', kind: { kind: 'Pod' }, object: hostPod } },
      OPTS,
    ) as { response: { allowed: boolean; patch?: string; warnings?: string[] } };
    assert.equal(r.response.allowed, true);
    assert.equal(r.response.patch, undefined);
    assert.match(r.response.warnings![0], /not injected \(hostNetwork/);
  });
});
