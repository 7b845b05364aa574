/** Test support for the control plane: a real SQLite store in a temp dir and a real HTTP server on port 0. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../src/store/sqlite-store.ts';
import type { Store } from '../../src/store/store.ts';
import { ControlPlane, type ControlPlaneOptions } from '../../src/control/control-plane.ts';

export interface TestCp {
  cp: ControlPlane;
  url: string;
  store: Store;
  close(): Promise<void>;
}

/** A temp-dir SQLite store with a fast lease sweep. */
export async function tempStore(): Promise<{ store: Store; close(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'hexmesh-cp-'));
  const store = await SqliteStore.open(join(dir, 'hexmesh.db'), { leaseSweepMs: 50, synchronous: 'normal' });
  return {
    store,
    close: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Start a control plane on 127.0.0.1:0 over `store` (a fresh temp store when absent). */
export async function startCp(opts: Partial<ControlPlaneOptions> = {}): Promise<TestCp> {
  const own = opts.store ? undefined : await tempStore();
  const store = opts.store ?? own!.store;
  const cp = new ControlPlane({
    listen: { address: '127.0.0.1', port: 0 },
    discovery: false,
    ...opts,
    store,
  });
  const { port } = await cp.start();
  return {
    cp,
    store,
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      await cp.close();
      await own?.close();
    },
  };
}

export interface Answer<T = any> {
  status: number;
  body: T;
  index: number | undefined;
  headers: Headers;
}

/** One request with fetch; JSON bodies are encoded, JSON answers decoded. */
export async function call<T = any>(
  url: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Answer<T>> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    if (typeof body === 'string' || body instanceof Uint8Array) init.body = body as string;
    else {
      init.body = JSON.stringify(body);
      (init.headers as Record<string, string>)['content-type'] ??= 'application/json';
    }
  }
  const res = await fetch(url + path, init);
  const text = await res.text();
  let parsed: unknown = text;
  if ((res.headers.get('content-type') ?? '').includes('json') && text) parsed = JSON.parse(text);
  const idx = res.headers.get('x-hexmesh-index');
  return {
    status: res.status,
    body: parsed as T,
    index: idx === null ? undefined : Number(idx),
    headers: res.headers,
  };
}

/** Poll `fn` until it returns truthy or `timeoutMs` passes (then throws with `what`). */
export async function eventually<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const service = (name: string, namespace = 'default') => ({
  apiVersion: 'hexmesh.io/v1alpha1',
  kind: 'Service',
  metadata: { name, namespace },
  spec: { ports: [{ port: 80, protocol: 'http' }] },
});

export const route = (name: string, parent: string, namespace = 'default') => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'HTTPRoute',
  metadata: { name, namespace },
  spec: {
    parentRefs: [{ kind: 'Service', name: parent }],
    rules: [{ backendRefs: [{ name: parent, port: 80 }], timeouts: { request: '2s' } }],
  },
});
