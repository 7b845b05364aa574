/**
 * Test support for tracing: a local OTLP/HTTP receiver (JSON, as the OTLP/HTTP exporter
 * sends by default) and a three-service chain A → B → C, each app behind its own sidecar,
 * where each app copies the trace headers from its request to its outgoing call, as apps
 * in a mesh must.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startHttpServer, startProxy, type RunningProxy } from '../support/mesh.ts';

export interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  /** OTLP SpanKind: 2 server, 3 client. */
  kind: number;
  attributes: Record<string, unknown>;
  status: number;
}

interface OtlpAttr {
  key: string;
  value: Record<string, unknown>;
}

function attrs(list: OtlpAttr[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const a of list ?? []) {
    const v = a.value;
    out[a.key] =
      v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : (v.boolValue ?? v.doubleValue));
  }
  return out;
}

/** OTLP/JSON ids are hex; tolerate base64 too (older transformers). */
function hexId(v: string | undefined, len: number): string {
  if (v === undefined || v === '') return '';
  if (v.length === len && /^[0-9a-f]+$/.test(v)) return v;
  return Buffer.from(v, 'base64').toString('hex');
}

export class OtlpReceiver {
  readonly spans: ReceivedSpan[] = [];
  posts = 0;
  #server: http.Server;
  url = '';

  constructor() {
    this.#server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.posts++;
        try {
          const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          for (const rs of body.resourceSpans ?? []) {
            const service = String(attrs(rs.resource?.attributes)['service.name']);
            for (const ss of rs.scopeSpans ?? [])
              for (const s of ss.spans ?? [])
                this.spans.push({
                  service,
                  traceId: hexId(s.traceId, 32),
                  spanId: hexId(s.spanId, 16),
                  parentSpanId: hexId(s.parentSpanId, 16),
                  name: s.name,
                  kind: s.kind,
                  attributes: attrs(s.attributes),
                  status: s.status?.code ?? 0,
                });
          }
        } catch {
          res.writeHead(400).end();
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
  }

  async start(): Promise<string> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/v1/traces`;
    return this.url;
  }

  /** Wait until `n` spans arrived (or `ms` passed); returns what arrived. */
  async waitFor(n: number, ms = 10_000): Promise<ReceivedSpan[]> {
    const end = Date.now() + ms;
    while (this.spans.length < n && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    return this.spans;
  }

  close(): Promise<void> {
    return new Promise((r) => {
      this.#server.closeAllConnections();
      this.#server.close(() => r());
    });
  }
}

export interface Chain {
  /** Send here (A's sidecar inbound) with `Host: a`. */
  entryPort: number;
  proxies: { a: RunningProxy; b: RunningProxy; c: RunningProxy };
  /** Headers C's app received on its last request. */
  lastAtC: http.IncomingHttpHeaders | undefined;
  close(): Promise<void>;
}

/**
 * A → B → C: `copy` names the headers each app forwards (the trace headers its tracing
 * library knows). `tracing` is each sidecar's `proxy.tracing` (undefined: off).
 */
export async function startChain(
  tracing: Record<string, unknown> | undefined,
  copy: readonly string[],
): Promise<Chain> {
  const closers: (() => Promise<void>)[] = [];
  const chain = { lastAtC: undefined } as Chain;
  const forwarder =
    (next: string, outbound: () => number): http.RequestListener =>
    (req, res) => {
      const headers: Record<string, string> = { host: next };
      for (const name of copy) {
        const v = req.headers[name];
        if (typeof v === 'string') headers[name] = v;
      }
      const out = http.request(
        { host: '127.0.0.1', port: outbound(), path: `/from-${next}`, headers, agent: false },
        (r) => {
          r.resume();
          r.on('end', () => res.writeHead(r.statusCode ?? 502).end(`via ${next}\n`));
        },
      );
      out.on('error', () => res.writeHead(599).end());
      out.end();
    };
  const appC = await startHttpServer((req, res) => {
    chain.lastAtC = req.headers;
    res.end('c\n');
  });
  closers.push(appC.close);
  let bOut = 0;
  let aOut = 0;
  const appB = await startHttpServer(forwarder('c', () => bOut));
  const appA = await startHttpServer(forwarder('b', () => aOut));
  closers.push(appB.close, appA.close);
  const extra = tracing ? { tracing } : {};
  const c = await startProxy({ proxy: { service: 'c', app: { port: appC.port }, ...extra } });
  const b = await startProxy({
    proxy: { service: 'b', app: { port: appB.port }, ...extra },
    services: [{ name: 'c', endpoints: [{ address: '127.0.0.1', port: c.inboundPort }] }],
  });
  const a = await startProxy({
    proxy: { service: 'a', app: { port: appA.port }, ...extra },
    services: [{ name: 'b', endpoints: [{ address: '127.0.0.1', port: b.inboundPort }] }],
  });
  bOut = b.addr.outbound.port;
  aOut = a.addr.outbound.port;
  closers.unshift(a.close, b.close, c.close);
  chain.entryPort = a.inboundPort;
  chain.proxies = { a, b, c };
  chain.close = async () => {
    for (const fn of closers) await fn();
  };
  return chain;
}

/** GET / on A's sidecar inbound with extra headers; resolves with the status. */
export function callChain(chain: Chain, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: chain.entryPort,
        path: '/start?token=secret',
        headers: { host: 'a', ...headers },
        agent: false,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end();
  });
}
