/**
 * The live tap (`GET /v1/tap`, NDJSON): read with fetch streaming, one event per line.
 * Field names are read tolerantly (the tap's shape may grow); what the views need is
 * normalised into `TapEvent`. A 404 (or 501) means this control plane has no tap.
 */
import { apiError } from './api.ts';
import { auth } from './auth.ts';

export interface TapEvent {
  /** A sequence number given here, for React keys. */
  seq: number;
  time: number;
  method: string;
  authority: string;
  path: string;
  status: number | undefined;
  latencyMs: number | undefined;
  /** Calling and called service (as `hexmesh tap`'s SOURCE and DESTINATION), else an identity. */
  src: string;
  dst: string;
  /** The peer's verified identity (the caller's inbound, the callee's outbound), if any. */
  identity: string | undefined;
  /** gRPC status code from headers or trailers; undefined when not gRPC. */
  grpcStatus: string | undefined;
  tls: boolean | undefined;
  /** `x-hexmesh-error` code of a proxy-made response. */
  error: string | undefined;
  direction: string | undefined;
}

export interface TapFilter {
  service?: string;
  namespace?: string;
  path?: string;
  method?: string;
  status?: string;
}

type Raw = Record<string, unknown>;
const str = (v: unknown): string | undefined =>
  typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined;
const num = (v: unknown): number | undefined =>
  typeof v === 'number' && Number.isFinite(v)
    ? v
    : typeof v === 'string' && v !== '' && Number.isFinite(Number(v))
      ? Number(v)
      : undefined;
const pick = (o: Raw, ...names: string[]): unknown => {
  for (const n of names) if (o[n] !== undefined && o[n] !== null) return o[n];
  return undefined;
};
/** An identity or a `{service, identity}` peer object as one string. */
const peer = (v: unknown): string => {
  if (v && typeof v === 'object') {
    const o = v as Raw;
    return str(pick(o, 'identity', 'spiffe', 'service', 'name', 'address')) ?? '';
  }
  return str(v) ?? '';
};

let seq = 0;

/** One NDJSON line as an event; undefined for heartbeats and other non-request lines. */
export function toTapEvent(o: Raw): TapEvent | undefined {
  const type = str(o.type);
  if (type && type !== 'request' && type !== 'response' && type !== 'event') return undefined;
  const req = (o.request && typeof o.request === 'object' ? o.request : o) as Raw;
  const res = (o.response && typeof o.response === 'object' ? o.response : o) as Raw;
  const method = str(pick(req, 'method'));
  if (!method) return undefined;
  const tlsRaw = pick(o, 'tls', 'mtls', 'secure');
  const t = pick(o, 'time', 'ts', 'timestamp', 'startTime');
  const time = typeof t === 'string' ? Date.parse(t) : (num(t) ?? Date.now());
  return {
    seq: ++seq,
    time: Number.isFinite(time) ? time : Date.now(),
    method,
    authority: str(pick(req, 'authority', 'host')) ?? '',
    path: str(pick(req, 'path', 'url')) ?? '',
    status: num(pick(res, 'status', 'statusCode')),
    latencyMs:
      num(pick(o, 'latencyMs', 'durationMs', 'latency_ms', 'duration')) ??
      num(pick(res, 'latencyMs', 'durationMs')),
    src: peer(pick(o, 'srcService', 'src', 'source', 'srcIdentity', 'sourceIdentity', 'client')),
    dst: peer(pick(o, 'dstService', 'dst', 'destination', 'dstIdentity', 'destinationIdentity', 'server')),
    identity: str(o.direction === 'outbound' ? o.dstIdentity : o.srcIdentity),
    grpcStatus: str(pick(o, 'grpcStatus', 'grpc_status')) ?? str(pick(res, 'grpcStatus')),
    tls: typeof tlsRaw === 'boolean' ? tlsRaw : tlsRaw && typeof tlsRaw === 'object' ? true : undefined,
    error:
      str(pick(o, 'error', 'errorCode', 'hexmeshError', 'x-hexmesh-error')) ??
      str(pick(res, 'error', 'hexmeshError')),
    direction: str(o.direction),
  };
}

export function tapQuery(f: TapFilter): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(f)) if (v) q.set(k, v);
  const s = q.toString();
  return `/v1/tap${s ? `?${s}` : ''}`;
}

export type TapEnd =
  | { kind: 'unavailable'; message: string }
  | { kind: 'ended' }
  | { kind: 'error'; message: string; status?: number };

/**
 * Stream the tap until `signal` aborts or the server ends it. Resolves with why it stopped;
 * an abort resolves `ended`.
 */
export async function streamTap(
  filter: TapFilter,
  onEvent: (e: TapEvent) => void,
  signal: AbortSignal,
): Promise<TapEnd> {
  let res: Response;
  try {
    res = await fetch(tapQuery(filter), { signal, headers: auth.headers('application/x-ndjson') });
  } catch (err) {
    if (signal.aborted) return { kind: 'ended' };
    return { kind: 'error', message: err instanceof Error ? err.message : String(err) };
  }
  if (res.status === 404 || res.status === 501) {
    await res.body?.cancel();
    return { kind: 'unavailable', message: `the control plane has no /v1/tap endpoint (HTTP ${res.status})` };
  }
  if (!res.ok || !res.body) {
    // 401 asks for a token; 403 names the permission missing (`tap`).
    const e = apiError(res, await res.text().catch(() => ''));
    return { kind: 'error', message: e.message, status: res.status };
  }
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        let o: unknown;
        try {
          o = JSON.parse(line);
        } catch {
          continue;
        }
        if (o && typeof o === 'object') {
          if ((o as Raw).type === 'error')
            return { kind: 'error', message: str((o as Raw).message) ?? 'tap ended with an error' };
          const e = toTapEvent(o as Raw);
          if (e) onEvent(e);
        }
      }
      // A line without a newline this long is garbage: drop it rather than grow.
      if (buf.length > 1 << 20) buf = '';
    }
  } catch (err) {
    if (signal.aborted) return { kind: 'ended' };
    return { kind: 'error', message: err instanceof Error ? err.message : String(err) };
  }
  return { kind: 'ended' };
}
