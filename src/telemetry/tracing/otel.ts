/**
 * Everything the proxy takes from OpenTelemetry at run time, in one module that tracer.ts
 * loads with a dynamic import when `proxy.tracing` is set: the SDK, the exporter and the
 * API are ~15 MiB of RSS that a sidecar without tracing should not carry.
 */
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
} from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_NAMESPACE } from '@opentelemetry/semantic-conventions';
import type { TracingSettings } from './tracer.ts';

export { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags } from '@opentelemetry/api';
export {
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_NETWORK_PEER_ADDRESS,
  ATTR_SERVER_ADDRESS,
  ATTR_URL_PATH,
} from '@opentelemetry/semantic-conventions';

/** Batch export period; spans reach the collector within about this long. */
const EXPORT_DELAY_MS = 1000;
/** Spans queued while the collector is slow or down; more are dropped (bounded memory). */
const MAX_QUEUE = 2048;

/** A tracer provider exporting OTLP/HTTP JSON to `settings.endpoint`. */
export function createProvider(
  settings: TracingSettings,
  service: string,
  namespace: string,
): BasicTracerProvider {
  const exporter = new OTLPTraceExporter({ url: settings.endpoint });
  return new BasicTracerProvider({
    resource: resourceFromAttributes({
      [ATTR_SERVICE_NAME]: settings.serviceName ?? service,
      [ATTR_SERVICE_NAMESPACE]: namespace,
    }),
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(settings.sampleRate) }),
    spanProcessors: [
      new BatchSpanProcessor(exporter, {
        scheduledDelayMillis: EXPORT_DELAY_MS,
        maxQueueSize: MAX_QUEUE,
        maxExportBatchSize: 512,
      }),
    ],
  });
}
