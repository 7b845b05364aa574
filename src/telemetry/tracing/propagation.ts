/**
 * Trace context on the wire: W3C `traceparent`/`tracestate` and B3 (single `b3` header and
 * multi `x-b3-*`). Parsing is by hand over fixed-width fields (no regex, no allocation
 * beyond the id strings), since it runs on every request while tracing is on.
 *
 * Precedence when a request carries several (as Envoy and the OpenTelemetry composite
 * propagator): W3C first, then single `b3`, then `x-b3-*`. The span context we forward is
 * written in W3C always, and in B3 too (same form) when the request came with B3, so a
 * Zipkin-instrumented app downstream keeps its trace.
 */
import { header, type HeaderMap } from '../../proxy/core/dispatch.ts';

/** The incoming context of a request, as far as the proxy needs it. */
export interface WireContext {
  traceId: string;
  spanId: string;
  sampled: boolean;
  /** How it arrived, so the outgoing side answers in kind. */
  format: 'w3c' | 'b3' | 'b3multi';
  /** B3 ids may be 64-bit: remember to write them back at that width. */
  shortTraceId: boolean;
}

const ZERO_TRACE = '00000000000000000000000000000000';
const ZERO_SPAN = '0000000000000000';
const PAD = '0000000000000000';

function isHex(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    // 0-9, a-f (W3C requires lower case; B3 too, but tolerate upper case there by lowering first).
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

/** `00-<32 hex>-<16 hex>-<2 hex>`; future versions may append fields (W3C: parse the prefix). */
export function parseTraceparent(v: string | undefined): WireContext | undefined {
  if (v === undefined || v.length < 55) return undefined;
  if (v[2] !== '-' || v[35] !== '-' || v[52] !== '-') return undefined;
  if (!isHex(v, 0, 2) || !isHex(v, 3, 35) || !isHex(v, 36, 52) || !isHex(v, 53, 55)) return undefined;
  const version = v.slice(0, 2);
  if (version === 'ff' || (version === '00' && v.length !== 55)) return undefined;
  if (v.length > 55 && v[55] !== '-') return undefined;
  const traceId = v.slice(3, 35);
  const spanId = v.slice(36, 52);
  if (traceId === ZERO_TRACE || spanId === ZERO_SPAN) return undefined;
  const flags = parseInt(v.slice(53, 55), 16);
  return { traceId, spanId, sampled: (flags & 1) === 1, format: 'w3c', shortTraceId: false };
}

function b3TraceId(raw: string): { id: string; short: boolean } | undefined {
  const id = raw.toLowerCase();
  if (id.length === 16 && isHex(id, 0, 16)) return { id: PAD + id, short: true };
  if (id.length === 32 && isHex(id, 0, 32)) return { id, short: false };
  return undefined;
}

function b3Sampled(v: string | undefined): boolean | undefined {
  if (v === undefined) return undefined;
  if (v === '1' || v === 'd' || v === 'true') return true;
  if (v === '0' || v === 'false') return false;
  return undefined;
}

/** `b3: {traceId}-{spanId}[-{sampled}[-{parentSpanId}]]`; a lone `0`/`1`/`d` carries no ids. */
export function parseB3Single(v: string | undefined): WireContext | undefined {
  if (v === undefined) return undefined;
  const d1 = v.indexOf('-');
  if (d1 === -1) return undefined;
  const t = b3TraceId(v.slice(0, d1));
  if (t === undefined) return undefined;
  const d2 = v.indexOf('-', d1 + 1);
  const spanId = (d2 === -1 ? v.slice(d1 + 1) : v.slice(d1 + 1, d2)).toLowerCase();
  if (spanId.length !== 16 || !isHex(spanId, 0, 16) || spanId === ZERO_SPAN) return undefined;
  if (t.id === ZERO_TRACE) return undefined;
  let sampled = true; // B3: absent sampling state defers to us; treat like an upstream that sampled.
  if (d2 !== -1) {
    const d3 = v.indexOf('-', d2 + 1);
    const s = b3Sampled(d3 === -1 ? v.slice(d2 + 1) : v.slice(d2 + 1, d3));
    if (s === undefined) return undefined;
    sampled = s;
  }
  return { traceId: t.id, spanId, sampled, format: 'b3', shortTraceId: t.short };
}

/** `x-b3-traceid`, `x-b3-spanid`, `x-b3-sampled` / `x-b3-flags: 1` (debug). */
export function parseB3Multi(h: HeaderMap): WireContext | undefined {
  const rawTrace = header(h, 'x-b3-traceid');
  const rawSpan = header(h, 'x-b3-spanid');
  if (rawTrace === undefined || rawSpan === undefined) return undefined;
  const t = b3TraceId(rawTrace);
  const spanId = rawSpan.toLowerCase();
  if (t === undefined || t.id === ZERO_TRACE) return undefined;
  if (spanId.length !== 16 || !isHex(spanId, 0, 16) || spanId === ZERO_SPAN) return undefined;
  const sampled = header(h, 'x-b3-flags') === '1' ? true : (b3Sampled(header(h, 'x-b3-sampled')) ?? true);
  return { traceId: t.id, spanId, sampled, format: 'b3multi', shortTraceId: t.short };
}

/** The request's trace context, if it has a valid one in any supported format. */
export function extract(h: HeaderMap): WireContext | undefined {
  return parseTraceparent(header(h, 'traceparent')) ?? parseB3Single(header(h, 'b3')) ?? parseB3Multi(h);
}

/**
 * Write the context of the span that now owns the request into its headers: `traceparent`
 * always; B3 as well, in each form the request arrived with or already carries (an app that
 * copies both W3C and B3 headers must not forward a stale B3 context). `tracestate` is vendor
 * data of the W3C format and passes through as received.
 */
export function inject(
  h: HeaderMap,
  traceId: string,
  spanId: string,
  sampled: boolean,
  incoming: WireContext | undefined,
): void {
  h['traceparent'] = `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`;
  const single = incoming?.format === 'b3' || h['b3'] !== undefined;
  const multi = incoming?.format === 'b3multi' || h['x-b3-traceid'] !== undefined;
  if (!single && !multi) return;
  // Keep a 64-bit B3 trace id at that width, also when W3C (always 128-bit) carried it here.
  const prev = header(h, 'x-b3-traceid') ?? header(h, 'b3');
  const short =
    traceId.startsWith(PAD) &&
    ((incoming !== undefined && incoming.shortTraceId) ||
      (prev !== undefined &&
        prev.indexOf('-') !== 32 &&
        prev.length >= 16 &&
        (prev.length === 16 || prev[16] === '-')));
  const tid = short ? traceId.slice(16) : traceId;
  const s = sampled ? '1' : '0';
  if (single) h['b3'] = incoming ? `${tid}-${spanId}-${s}-${incoming.spanId}` : `${tid}-${spanId}-${s}`;
  if (multi) {
    h['x-b3-traceid'] = tid;
    h['x-b3-spanid'] = spanId;
    if (incoming) h['x-b3-parentspanid'] = incoming.spanId;
    else delete h['x-b3-parentspanid'];
    h['x-b3-sampled'] = s;
    delete h['x-b3-flags'];
  }
}
