/**
 * A load-generator process for the control-plane benchmark: many lightweight simulated
 * proxies (one WebSocket each, speaking the discovery protocol of docs/control-api.md),
 * driven by the parent over IPC (protocol in worker-protocol.ts). Runs in its own process
 * so the subscribers' CPU is not charged to the control plane.
 *
 * Every subscriber says hello with its subscriptions (`hello.services`, one step), acks
 * every snapshot and delta, and records when it first sees each benchmark change: change
 * `i` is an endpoint with port `portBase + i` appearing in the hot service.
 */
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import type { ConnectCommand, ParentMessage, WorkerMessage } from './worker-protocol.ts';

/** Absolute milliseconds, comparable across the processes of one machine. */
const now = (): number => performance.timeOrigin + performance.now();

interface Sub {
  ws: WebSocket;
  /** Local index: receipts are stored per change at this index. */
  idx: number;
  gotSnapshot: boolean;
}

let cmd: ConnectCommand | undefined;
const subs: Sub[] = [];
/** receipts[change][subscriber] = absolute receipt time, NaN until seen. */
let receipts: Float64Array[] = [];
/** Subscribers that have seen each change. */
let seenCount: number[] = [];
let dropped = 0;
const errors = new Set<string>();

function send(m: WorkerMessage): void {
  process.send?.(m);
}

interface MeshServiceMsg {
  name?: string;
  namespace?: string;
  endpoints?: { port?: number }[];
}

function record(sub: Sub, services: MeshServiceMsg[] | undefined, t: number): void {
  if (!services || !cmd) return;
  for (const s of services) {
    if (s.name !== cmd.hot || !s.endpoints) continue;
    for (const e of s.endpoints) {
      const c = (e.port ?? 0) - cmd.portBase;
      if (c < 0 || c >= cmd.changes) continue;
      const row = receipts[c];
      if (Number.isNaN(row[sub.idx])) {
        row[sub.idx] = t;
        seenCount[c]++;
      }
    }
  }
}

function open(c: ConnectCommand, idx: number): Promise<number> {
  const id = c.firstId + idx;
  const self = `svc-${String(id % c.services).padStart(4, '0')}`;
  const wanted = new Set<string>([c.hot]);
  // A few other destinations per proxy, spread over the services (deterministic per id).
  for (let j = 1; wanted.size < c.perProxy + 1 && j < 64; j++)
    wanted.add(`svc-${String((id * 7919 + j * 104729) % c.services).padStart(4, '0')}`);
  const t0 = now();
  return new Promise((resolve) => {
    const ws = new WebSocket(c.url, { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
    const sub: Sub = { ws, idx, gotSnapshot: false };
    subs[idx] = sub;
    let settled = false;
    const done = (v: number): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(v);
    };
    const timer = setTimeout(() => {
      errors.add(`no snapshot within ${c.connectTimeoutMs} ms`);
      done(NaN);
    }, c.connectTimeoutMs);
    ws.on('open', () => {
      ws.send(
        JSON.stringify({
          type: 'hello',
          node: { id: `bench-proxy-${id}`, service: self, namespace: 'default', address: '127.0.0.1' },
          services: [...wanted],
        }),
      );
    });
    ws.on('message', (data) => {
      const t = now();
      let m: {
        type?: string;
        version?: number;
        services?: MeshServiceMsg[];
        upserts?: { services?: MeshServiceMsg[] };
      };
      try {
        m = JSON.parse(data.toString()) as typeof m;
      } catch {
        errors.add('unparseable message from the control plane');
        return;
      }
      if (m.type === 'snapshot') {
        ws.send(`{"type":"ack","version":${m.version}}`);
        record(sub, m.services, t);
        if (!sub.gotSnapshot) {
          sub.gotSnapshot = true;
          done(t - t0);
        }
      } else if (m.type === 'delta') {
        ws.send(`{"type":"ack","version":${m.version}}`);
        record(sub, m.upserts?.services, t);
      } else if (m.type === 'error') errors.add(`control plane error message`);
    });
    ws.on('error', (err) => errors.add(err.message));
    ws.on('close', (code, reason) => {
      if (!sub.gotSnapshot) {
        errors.add(`closed before the snapshot: ${code} ${reason.toString()}`);
        done(NaN);
      } else if (!closing) {
        dropped++;
        errors.add(`closed by the control plane: ${code} ${reason.toString()}`);
      }
    });
  });
}

async function connectAll(c: ConnectCommand): Promise<void> {
  cmd = c;
  receipts = Array.from({ length: c.changes }, () => new Float64Array(c.count).fill(NaN));
  seenCount = new Array<number>(c.changes).fill(0);
  const fullConfigMs = new Array<number>(c.count).fill(NaN);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < c.count) {
      const i = next++;
      fullConfigMs[i] = await open(c, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(c.concurrency, c.count) }, lane));
  send({ type: 'connected', fullConfigMs, errors: [...errors].slice(0, 10) });
}

let closing = false;
async function closeAll(): Promise<void> {
  closing = true;
  // Close code 1000: the control plane revokes each proxy's lease at once.
  await Promise.all(
    subs.map(
      (s) =>
        new Promise<void>((resolve) => {
          if (!s || s.ws.readyState === WebSocket.CLOSED) return resolve();
          const t = setTimeout(() => (s.ws.terminate(), resolve()), 3000);
          s.ws.once('close', () => (clearTimeout(t), resolve()));
          s.ws.close(1000);
        }),
    ),
  );
  send({ type: 'closed' });
  process.disconnect?.();
  setTimeout(() => process.exit(0), 200).unref();
}

process.on('message', (raw) => {
  const m = raw as ParentMessage;
  switch (m.type) {
    case 'connect':
      void connectAll(m);
      return;
    case 'progress':
      send({ type: 'progress', seen: seenCount[m.change] ?? 0, dropped });
      return;
    case 'report':
      send({
        type: 'report',
        receipts: receipts.map((r) => Array.from(r)),
        dropped,
        errors: [...errors].slice(0, 10),
      });
      return;
    case 'close':
      void closeAll();
      return;
  }
});
// The parent went away: do not linger.
process.on('disconnect', () => {
  if (!closing) process.exit(0);
});
send({ type: 'ready' });
