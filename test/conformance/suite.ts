/**
 * What every ported conformance test file shares: one mesh per file, started before its tests
 * and closed after them, and the manifest pieces upstream's manifests repeat.
 */
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { startGrpcMesh, type GrpcMesh } from './grpc-harness.ts';
import { startMesh, type Mesh } from './mesh-harness.ts';

/** A mesh for this test file: started in `before`, closed in `after`; use it inside tests. */
export function useMesh(): Mesh {
  const m = useStarted(startMesh);
  return {
    get pods() {
      return m().pods;
    },
    get seen() {
      return m().seen;
    },
    get clients() {
      return m().clients;
    },
    apply: (resources) => m().apply(resources),
    close: () => m().close(),
  };
}

/** The gRPC mesh (grpc-harness.ts) for this test file, as {@link useMesh}. */
export function useGrpcMesh(): GrpcMesh {
  const m = useStarted(startGrpcMesh);
  return {
    get seen() {
      return m().seen;
    },
    apply: (resources) => m().apply(resources),
    call: (method, metadata) => m().call(method, metadata),
    close: () => m().close(),
  };
}

function useStarted<T extends { close(): Promise<void> }>(start: () => Promise<T>): () => T {
  let started: T | undefined;
  before(async () => {
    started = await start();
  });
  after(async () => {
    await started?.close();
  });
  return () => started ?? assert.fail('the mesh is used before it started (outside a test?)');
}

/** The parentRef of most upstream mesh manifests: Service `echo`, port 80. */
export const echoParent = { group: '', kind: 'Service', name: 'echo', port: 80 };

/** A backendRef (port 80 unless given) with any further fields (`weight`, `filters`, …). */
export const backend = (name: string, port = 80, extra: Record<string, unknown> = {}) => ({
  name,
  port,
  ...extra,
});

export const prefix = (value: string) => ({ path: { type: 'PathPrefix', value } });
export const exact = (value: string) => ({ path: { type: 'Exact', value } });

/** The header edits of upstream's `*-and-modify-headers` rules (rewrites, mirrors). */
export const MODIFY_HEADERS = {
  type: 'RequestHeaderModifier',
  requestHeaderModifier: {
    set: [{ name: 'X-Header-Set', value: 'set-overwrites-values' }],
    add: [
      { name: 'X-Header-Add', value: 'header-val-1' },
      { name: 'X-Header-Add-Append', value: 'header-val-2' },
    ],
    remove: ['X-Header-Remove'],
  },
};

/**
 * The rules of upstream's httproute-header-matching.yaml (grpcroute-header-matching has the
 * same), each sending to `backendRef(name)`.
 */
export function headerMatchingRules(backendRef: (name: string) => unknown) {
  const h = (...pairs: [string, string][]) => ({ headers: pairs.map(([name, value]) => ({ name, value })) });
  const to = (name: string, ...matches: Record<string, unknown>[]) => ({
    matches,
    backendRefs: [backendRef(name)],
  });
  return [
    to('echo-v1', h(['version', 'one'])),
    to('echo-v2', h(['version', 'two'])),
    to('echo-v1', h(['version', 'two'], ['color', 'orange'])),
    to('echo-v1', h(['color', 'blue']), h(['color', 'green'])),
    to('echo-v2', h(['color', 'red']), h(['color', 'yellow'])),
  ];
}

/** Its cases (the same for both): the request's headers and the backend, or undefined for none. */
export const HEADER_MATCHING_CASES: [Record<string, string>, 'echo-v1' | 'echo-v2' | undefined][] = [
  [{ Version: 'one' }, 'echo-v1'],
  [{ Version: 'two' }, 'echo-v2'],
  [{ Version: 'two', Color: 'orange' }, 'echo-v1'],
  [{ Version: 'two', Color: 'blue' }, 'echo-v2'],
  [{ Color: 'orange' }, undefined],
  [{ 'Some-Other-Header': 'one' }, undefined],
  [{ Color: 'blue' }, 'echo-v1'],
  [{ Color: 'green' }, 'echo-v1'],
  [{ Color: 'red' }, 'echo-v2'],
  [{ Color: 'yellow' }, 'echo-v2'],
  [{ Color: 'purple' }, undefined],
];
