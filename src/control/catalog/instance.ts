/**
 * A catalog instance: one running copy of a service, registered by its sidecar (or by
 * `hexmesh register` for an instance without one). The register body is validated here,
 * once; what the store holds is the `Instance` record.
 */
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

export const checkSchema = z
  .object({
    name: z.string().min(1),
    type: z.enum(['http', 'tcp', 'grpc', 'ttl']),
    path: z.string().optional(),
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
    address: z.string().min(1),
    port,
    meshPort: port.optional(),
    adminAddress: z
      .string()
      .regex(/^[^\s/]+:\d{1,5}$/, "must be 'host:port'")
      .optional(),
    labels: z.record(z.string(), z.string()).default({}),
    checks: z.array(checkSchema).default([]),
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
