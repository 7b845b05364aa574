/**
 * The tracing layer: one span per request through the proxy, SERVER on the inbound path and
 * CLIENT on the outbound path, child of the context the request arrived with (W3C or B3,
 * see propagation.ts). The request then carries the new span's context downstream, so the
 * next hop (the local app inbound, the peer sidecar outbound) becomes its child.
 *
 * The span ends when the response body ends (not when headers arrive), with the attributes
 * only known then: status, route, retries, peer identity, endpoint. It is placed just inside
 * the telemetry layer, so it also sees requests inner layers reject.
 *
 * Off (no `proxy.tracing`), the layer is one property read per request: no span object,
 * no header parsing; trace headers pass through as any other header.
 */
import type { Span } from '@opentelemetry/api';
import type { Readable } from 'node:stream';
import type { Layer, MeshRequest, MeshResponse, Service } from '../../proxy/core/dispatch.ts';
import { errorResponse } from '../../proxy/core/error-response.ts';
import { stripQuery } from '../telemetry-layer.ts';
import { grpcStatusIndex } from '../request-series.ts';
import { extract, inject } from './propagation.ts';
import type { Otel, Tracing } from './tracer.ts';

const kSpan = Symbol('hexmesh.tracing.span');
type TracedBody = Readable & { [kSpan]?: OpenSpan };

interface OpenSpan {
  otel: Otel;
  span: Span;
  req: MeshRequest;
  res: MeshResponse;
}

/** Attributes known only once the request went through the stack. */
function finish(otel: Otel, span: Span, req: MeshRequest, res: MeshResponse, failed: boolean): void {
  const ctx = req.ctx;
  span.setAttribute(otel.ATTR_HTTP_RESPONSE_STATUS_CODE, res.status);
  span.setAttribute('hexmesh.src_service', ctx.srcService || 'unknown');
  span.setAttribute('hexmesh.dst_service', ctx.dstService || 'unknown');
  span.setAttribute('hexmesh.route', ctx.route);
  span.setAttribute('hexmesh.tls', ctx.tls);
  if (ctx.peerIdentity) span.setAttribute('hexmesh.peer_identity', ctx.peerIdentity);
  if (ctx.endpoint) span.setAttribute('hexmesh.endpoint', ctx.endpoint);
  const retries = ctx.notes.retries;
  span.setAttribute('hexmesh.retries', typeof retries === 'number' ? retries : 0);
  if (res.synthetic !== undefined) span.setAttribute('hexmesh.error', res.synthetic);
  let grpc = grpcStatusIndex(res.headers['grpc-status']);
  if (grpc === -1 && res.trailers !== undefined) grpc = grpcStatusIndex(res.trailers['grpc-status']);
  if (grpc !== -1) span.setAttribute('rpc.grpc.status_code', grpc);
  span.updateName(`${req.method} ${ctx.dstService || req.authority}`);
  // OTel HTTP conventions: 5xx is an error on both sides (4xx only on the server, and the
  // mesh counts 4xx as the service answering).
  if (failed || res.status >= 500 || (grpc !== -1 && grpc !== 0))
    span.setStatus({ code: otel.SpanStatusCode.ERROR, ...(res.synthetic ? { message: res.synthetic } : {}) });
  span.end();
}

function end(body: TracedBody, failed: boolean): void {
  const open = body[kSpan];
  if (open === undefined) return;
  body[kSpan] = undefined;
  body.removeListener('end', onBodyEnd);
  body.removeListener('error', onBodyError);
  body.removeListener('close', onBodyClose);
  finish(open.otel, open.span, open.req, open.res, failed);
}
// Module-level listeners: no closure per request.
function onBodyEnd(this: TracedBody): void {
  end(this, false);
}
function onBodyError(this: TracedBody): void {
  end(this, true);
}
function onBodyClose(this: TracedBody): void {
  end(this, true);
}

/**
 * Build the tracing layer over the proxy's {@link Tracing} (whose tracer follows config
 * snapshots). The direction comes from each request's context.
 */
export function tracingLayer(tracing: Tracing): Layer {
  return (next: Service): Service =>
    // Not async while tracing is off: no promise and no microtask of its own per request.
    function traced(req: MeshRequest): Promise<MeshResponse> {
      const tracer = tracing.tracer;
      return tracer === undefined ? next(req) : tracedCall(tracing, tracer, next, req);
    };
}

/** One request under a span (tracing on). */
async function tracedCall(
  tracing: Tracing,
  tracer: NonNullable<Tracing['tracer']>,
  next: Service,
  req: MeshRequest,
): Promise<MeshResponse> {
  const otel = tracing.otel!; // set before tracer
  const { ROOT_CONTEXT, SpanKind, TraceFlags } = otel;
  const ctx = req.ctx;
  const incoming = extract(req.headers);
  const parent =
    incoming === undefined
      ? ROOT_CONTEXT
      : otel.trace.setSpanContext(ROOT_CONTEXT, {
          traceId: incoming.traceId,
          spanId: incoming.spanId,
          traceFlags: incoming.sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
          isRemote: true,
        });
  const inbound = ctx.direction === 'inbound';
  const span = tracer.startSpan(
    req.method,
    {
      kind: inbound ? SpanKind.SERVER : SpanKind.CLIENT,
      startTime: performance.timeOrigin + ctx.start,
      attributes: {
        [otel.ATTR_HTTP_REQUEST_METHOD]: req.method,
        [otel.ATTR_URL_PATH]: stripQuery(req.path),
        [otel.ATTR_SERVER_ADDRESS]: req.authority,
        [otel.ATTR_NETWORK_PEER_ADDRESS]: ctx.srcAddress,
        'hexmesh.direction': ctx.direction,
      },
    },
    parent,
  );
  const sc = span.spanContext();
  inject(req.headers, sc.traceId, sc.spanId, (sc.traceFlags & TraceFlags.SAMPLED) !== 0, incoming);
  if (!span.isRecording()) return next(req);
  let res: MeshResponse;
  try {
    res = await next(req);
  } catch (err) {
    const synthetic = errorResponse(err, req);
    synthetic.body?.destroy();
    finish(otel, span, req, synthetic, true);
    throw err;
  }
  const body = res.body as TracedBody | null;
  if (body === null || body.readableEnded || body.destroyed) {
    finish(otel, span, req, res, body !== null && !body.readableEnded);
  } else {
    body[kSpan] = { otel, span, req, res };
    body.on('end', onBodyEnd);
    body.on('error', onBodyError);
    body.on('close', onBodyClose);
  }
  return res;
}
