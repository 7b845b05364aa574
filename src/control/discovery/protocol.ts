/**
 * The discovery stream's messages (WebSocket `/v1/discovery`, JSON text frames) and the
 * limits both ends enforce. Proxy → control plane messages are validated here, once; a
 * message that fails closes the stream with a code and a reason naming the problem.
 */
import { z } from 'zod';
import { formatPath } from '../../config/config-error.ts';
import { checkSchema, instanceAddress, instanceLabels } from '../catalog/instance.ts';

/** Path of the discovery endpoint on the control plane's HTTP server. */
export const DISCOVERY_PATH = '/v1/discovery';

/** Limits of one stream (the server's defaults; options may lower them). */
export const LIMITS = Object.freeze({
  /** Largest proxy → control plane frame; ws closes with 1009 beyond it. */
  maxClientMessageBytes: 256 * 1024,
  /** Largest control plane → proxy frame the client accepts (a snapshot can be big). */
  maxServerMessageBytes: 64 * 1024 * 1024,
  /** Destinations one proxy may subscribe to (explicit plus those routes pull in). */
  maxSubscriptions: 1024,
  /** Messages per second a proxy may send (token bucket: burst = 2x). */
  messagesPerSecond: 100,
});

/**
 * Close codes. 1003/1007/1008/1009 are RFC 6455's; 4xxx are ours (the reason text says
 * more). A client seeing 4001 (replaced) must not reconnect to the same id in a loop.
 */
export const CLOSE = Object.freeze({
  unsupportedData: 1003,
  invalidPayload: 1007,
  policy: 1008,
  tooBig: 1009,
  goingAway: 1001,
  /** Another stream said hello with the same node id. */
  replaced: 4001,
  /** The store refused the registration (unavailable); retry later. */
  storeUnavailable: 4503,
  /**
   * The credential the stream was opened with was revoked or expired, or a root rotation
   * removed its certificate's authority (the reason says which); reconnect with a valid one.
   */
  unauthenticated: 4401,
  /**
   * The proxy read too slowly: its unsent data passed the per-proxy cap, or the control plane's
   * send budget over all proxies was spent and it held the most. Reconnect to resync.
   */
  slowConsumer: 4008,
});

const dnsName = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a lower-case DNS label');

/** `name.namespace` (or a bare `name`, meaning the proxy's own namespace). */
const destinationName = z
  .string()
  .min(1)
  .max(253)
  .regex(
    /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)?$/,
    'must be <service> or <service>.<namespace>',
  );

export const nodeSchema = z
  .object({
    id: z
      .string()
      .min(1)
      .max(128)
      .regex(/^[A-Za-z0-9][-A-Za-z0-9_.]*$/, 'must be letters, digits, - _ .'),
    service: dnsName,
    namespace: dnsName.default('default'),
    /** Held to the catalog's rules here, so a bad one is refused as a bad message (1008). */
    address: instanceAddress,
    /** The app's port; without one the proxy is a client only and no catalog instance is registered. */
    appPort: z.number().int().min(1).max(65535).optional(),
    meshPort: z.number().int().min(1).max(65535).optional(),
    /**
     * The port of the proxy's admin listener. The control plane records it at the address the
     * stream comes from: a proxy never names the host the control plane will call.
     */
    adminPort: z.number().int().min(1).max(65535).optional(),
    /** Older proxies: `host:port`; only the port is used (as `adminPort`). */
    adminAddress: z.string().max(300).optional(),
    labels: instanceLabels.default({}),
    checks: z.array(checkSchema).max(16).default([]),
  })
  .strict();

const statusSchema = z.enum(['passing', 'warning', 'critical']);

export const clientMessageSchema = z.discriminatedUnion('type', [
  z
    .object({
      type: z.literal('hello'),
      node: nodeSchema,
      /** Ours (additive): destinations to subscribe at once, so a reconnect resyncs in one snapshot. */
      services: z.array(destinationName).max(LIMITS.maxSubscriptions).optional(),
    })
    .strict(),
  z.object({ type: z.literal('subscribe'), services: z.array(destinationName).min(1).max(256) }).strict(),
  z.object({ type: z.literal('ack'), version: z.number().int().min(0) }).strict(),
  z
    .object({ type: z.literal('nack'), version: z.number().int().min(0), error: z.string().max(4096) })
    .strict(),
  z
    .object({ type: z.literal('status'), status: statusSchema, output: z.string().max(4096).optional() })
    .strict(),
]);

export type NodeInfo = z.infer<typeof nodeSchema>;
export type NodeCheck = z.infer<typeof checkSchema>;
export type ClientMessage = z.infer<typeof clientMessageSchema>;
export type HealthStatus = z.infer<typeof statusSchema>;

/** A resource's identity in deltas. */
export interface ResourceRef {
  kind: string;
  namespace: string;
  name: string;
}

/** Control plane → proxy. `services` are MeshService documents, `resources` mesh resources. */
export type ServerMessage =
  | {
      type: 'snapshot';
      version: number;
      services: unknown[];
      resources: unknown[];
      /** Ours (additive): every destination the snapshot covers, known or not. */
      subscriptions: string[];
    }
  | {
      type: 'delta';
      version: number;
      upserts: { services: unknown[]; resources: unknown[] };
      removes: { services: string[]; resources: ResourceRef[] };
    }
  | { type: 'error'; message: string };

/** Parse one proxy frame; returns the message or a one-line reason naming the bad field. */
export function parseClientMessage(
  text: string,
): { ok: true; msg: ClientMessage } | { ok: false; reason: string } {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    return { ok: false, reason: `invalid JSON: ${(e as Error).message}` };
  }
  const r = clientMessageSchema.safeParse(doc);
  if (r.success) return { ok: true, msg: r.data };
  const i = r.error.issues[0];
  return { ok: false, reason: `invalid message: ${formatPath(i.path) || '(root)'}: ${i.message}` };
}

/** WebSocket close reasons are limited to 123 bytes. */
export function closeReason(text: string): string {
  const b = Buffer.from(text);
  return b.length <= 123
    ? text
    : b
        .subarray(0, 120)
        .toString('utf8')
        .replace(/\uFFFD+$/, '') + '...';
}
