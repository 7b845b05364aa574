/**
 * A catalog instance: one running copy of a service, registered by its sidecar (or by
 * `hexmesh register` for an instance without one). The register body is validated here,
 * once; what the store holds is the `Instance` record.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { duration } from '../../config/resources.ts';

export const INSTANCE_STATUSES = ['passing', 'warning', 'critical'] as const;
export type InstanceStatus = (typeof INSTANCE_STATUSES)[number];

const dnsName = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a lower-case DNS name (a-z, 0-9, -, .)');
/** Ids are path segments in keys and URLs: no slashes. */
const instanceId = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[A-Za-z0-9._:-]+$/, 'must contain only letters, digits, ".", "_", ":" and "-"');
const port = z.number().int().min(1).max(65535);

const HOST_NAME = /^[A-Za-z0-9_]([-A-Za-z0-9_.]*[A-Za-z0-9_])?$/;
/**
 * Where clients connect: an IP address (IPv6 with its zone) or a DNS host name, nothing else.
 * Config files are rendered from it (`server {{ i.id }} {{ i.address }}:{{ i.port }} check` in
 * an HAProxy template): a space or a line break would let the instance's workload write its
 * own directives there (`check addr <host> port <port>` aims HAProxy's checks anywhere).
 */
export const instanceAddress = z
  .string()
  .max(253)
  .refine((a) => isIP(a) !== 0 || HOST_NAME.test(a), 'must be an IP address or a DNS host name');
/**
 * Labels are free text (shown as text everywhere), on one line: a line break would start a
 * config directive. And few and short: they travel in every discovery snapshot of the service
 * to every client sidecar (64 labels; keys up to a Kubernetes label key's 317 characters).
 */
const oneLine = /^\P{Cc}*$/u;
const noControl = 'must not contain control characters (line breaks)';
export const MAX_LABELS = 64;
export const instanceLabels = z
  .record(z.string().min(1).max(317).regex(oneLine, noControl), z.string().max(253).regex(oneLine, noControl))
  .refine((l) => Object.keys(l).length <= MAX_LABELS, `at most ${MAX_LABELS} labels`);
/** The fields above on their own, for writers that do not come through `registerSchema`. */
export const addressAndLabelsSchema = z.object({ address: instanceAddress, labels: instanceLabels });

/**
 * A check names no target: the sidecar runs it against its own app (the control plane runs
 * none), and it runs no command (Consul's script checks have no counterpart). The HTTP path
 * is an origin-form request target, so it cannot name another host either.
 */
export const checkSchema = z
  .object({
    name: z.string().min(1).max(128),
    type: z.enum(['http', 'tcp', 'grpc', 'ttl']),
    path: z
      .string()
      .max(2048)
      .regex(/^\/(?!\/)[^\s\p{Cc}]*$/u, "must be a path on the app ('/health'), without spaces")
      .optional(),
    interval: duration.optional(),
    timeout: duration.optional(),
    ttl: duration.optional(),
  })
  .strict();

/** `PUT /v1/catalog/register` body. */
export const registerSchema = z
  .object({
    id: instanceId.optional(),
    service: dnsName,
    namespace: dnsName.default('default'),
    address: instanceAddress,
    port,
    meshPort: port.optional(),
    adminAddress: z
      .string()
      .regex(/^[^\s/]+:\d{1,5}$/, "must be 'host:port'")
      .optional(),
    labels: instanceLabels.default({}),
    /** As many as a discovery hello may carry. */
    checks: z.array(checkSchema).max(16).default([]),
    /** Heartbeat lease TTL (default 15s). */
    ttl: duration.optional(),
  })
  .strict()
  .refine((r) => r.ttl === undefined || r.ttl >= 100, {
    path: ['ttl'],
    message: 'ttl must be at least 100ms',
  });

export type RegisterInput = z.infer<typeof registerSchema>;

/** `PUT /v1/catalog/status/...` body. */
export const statusSchema = z
  .object({ status: z.enum(INSTANCE_STATUSES), output: z.string().max(4096).optional() })
  .strict();

export interface Instance {
  id: string;
  service: string;
  namespace: string;
  address: string;
  port: number;
  meshPort?: number;
  adminAddress?: string;
  labels: Record<string, string>;
  checks: z.infer<typeof checkSchema>[];
  status: InstanceStatus;
  output?: string;
  /** ISO time of registration. */
  registeredAt: string;
  /** ISO time the status last changed; the reaper measures "critical for how long" from it. */
  statusChangedAt: string;
  /** ISO time of the last status report (the TTL pass for TTL checks). */
  checkedAt?: string;
  /** The store lease keeping the instance alive. */
  lease: number;
}

export const DEFAULT_INSTANCE_TTL_MS = 15_000;

/** The id an instance gets when it registers without one: stable across re-registrations. */
export function defaultInstanceId(r: { address: string; port: number }): string {
  return `${r.address.replace(/[^A-Za-z0-9._-]/g, '_')}-${r.port}`;
}
