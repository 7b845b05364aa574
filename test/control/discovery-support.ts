/**
 * Test support for the discovery stream: a SQLite store in a temp dir, a bare node:http
 * server with the discovery endpoint attached, and a raw WebSocket client that queues what
 * it receives.
 */
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import {
  attachDiscovery,
  type DiscoveryOptions,
  type DiscoveryServer,
} from '../../src/control/discovery/discovery-server.ts';
import { SqliteStore } from '../../src/store/sqlite-store.ts';
import { KEYS } from '../../src/store/store.ts';

export interface Harness {
  store: SqliteStore;
  server: http.Server;
  discovery: DiscoveryServer;
  port: number;
  url: string;
  dir: string;
  /** Write a resource as the REST API would. */
  putResource(doc: { kind: string; metadata: { name: string; namespace?: string } }): Promise<void>;
  /** Write a catalog instance directly (no sidecar stream). */
  putInstance(i: {
    id: string;
    service: string;
    address?: string;
    port: number;
    meshPort?: number;
    labels?: Record<string, string>;
    status?: string;
  }): Promise<void>;
  close(): Promise<void>;
}

export async function startHarness(opts: DiscoveryOptions = {}, dir?: string): Promise<Harness> {
  const d = dir ?? mkdtempSync(join(tmpdir(), 'hexmesh-disc-'));
  const store = await SqliteStore.open(join(d, 'hexmesh.db'), { synchronous: 'normal' });
  const server = http.createServer((req, res) => {
    if (!discovery.handleProxiesRequest(req, res)) res.writeHead(404).end();
  });
  const discovery = attachDiscovery({ httpServer: server, store }, opts);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  await discovery.ready;
  return {
    store,
    server,
    discovery,
    port,
    url: `http://127.0.0.1:${port}`,
    dir: d,
    putResource: async (doc) => {
      const ns = doc.metadata.namespace ?? 'default';
      await store.put(
        KEYS.resource(doc.kind, ns, doc.metadata.name),
        JSON.stringify({ ...doc, metadata: { namespace: ns, ...doc.metadata } }),
      );
    },
    putInstance: async (i) => {
      await store.put(
        KEYS.instance('default', i.service, i.id),
        JSON.stringify({
          namespace: 'default',
          address: '127.0.0.1',
          labels: {},
          checks: [],
          status: 'passing',
          ...i,
        }),
      );
    },
    close: async () => {
      await discovery.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await store.close();
      if (!dir) rmSync(d, { recursive: true, force: true });
    },
  };
}

export interface Msg {
  type: string;
  version?: number;
  [k: string]: unknown;
}

/** A raw discovery client: sends JSON, queues received messages, remembers how it closed. */
export class RawClient {
  readonly ws: WebSocket;
  readonly messages: Msg[] = [];
  closed: { code: number; reason: string } | undefined;
  readonly opened: Promise<void>;
  readonly #waiters = new Set<() => void>();

  constructor(port: number) {
    this.ws = new WebSocket(`ws://127.0.0.1:${port}/v1/discovery`);
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
    this.ws.on('error', () => {});
    this.ws.on('message', (d) => {
      this.messages.push(JSON.parse(d.toString()) as Msg);
      this.#wake();
    });
    this.ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.#wake();
    });
  }

  #wake(): void {
    for (const w of [...this.#waiters]) w();
  }

  send(msg: unknown): void {
    this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
  }

  hello(node: Record<string, unknown>, services?: string[]): void {
    this.send({ type: 'hello', node: { address: '127.0.0.1', ...node }, ...(services ? { services } : {}) });
  }

  /** Wait for (and remove) the first queued message matching `pred`. */
  async next(pred: (m: Msg) => boolean = () => true, timeoutMs = 5000): Promise<Msg> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.messages.findIndex(pred);
      if (i >= 0) return this.messages.splice(i, 1)[0];
      if (this.closed)
        throw new Error(`stream closed (${this.closed.code} ${this.closed.reason}) while waiting`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout waiting for a message; have ${JSON.stringify(this.messages)}`);
      await new Promise<void>((r) => {
        const done = () => {
          clearTimeout(t);
          this.#waiters.delete(done);
          r();
        };
        const t = setTimeout(done, left);
        this.#waiters.add(done);
      });
    }
  }

  /** Wait until the stream closes. */
  async whenClosed(timeoutMs = 5000): Promise<{ code: number; reason: string }> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error('stream did not close');
      await new Promise((r) => setTimeout(r, 20));
    }
    return this.closed;
  }

  close(code = 1000): void {
    this.ws.close(code);
  }
}

export async function until<T>(
  fn: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 5000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timeout waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
