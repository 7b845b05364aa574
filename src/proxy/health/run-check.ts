/**
 * One entry point for every check type, shared by the proxy's HealthChecker and the
 * control plane's catalog (sidecars run their app's checks and report the result).
 */
import type { TrafficPolicySpec } from '../../config/resources.ts';
import { type CheckResult, withTimeout } from './check-result.ts';
import { grpcCheck } from './grpc-check.ts';
import { httpCheck } from './http-check.ts';
import { tcpCheck } from './tcp-check.ts';

export type { CheckResult, CheckStatus } from './check-result.ts';

/** Health check config as produced by the schema (defaults applied). */
export type HealthCheckConfig = NonNullable<TrafficPolicySpec['healthCheck']>;

/** What one check needs; a `HealthCheckConfig` is one. Unset fields take the schema defaults. */
export interface CheckSpec {
  readonly type: 'http' | 'tcp' | 'grpc';
  /** HTTP path (default `/health`). */
  readonly path?: string;
  /** gRPC service name to ask about (default '' = the whole server). */
  readonly grpcService?: string;
  /** Milliseconds (default 1000). */
  readonly timeout?: number;
}

/**
 * Run one check against `address:port`. Never rejects: failures, timeouts and
 * cancellation (`signal`) come back as `critical` with a detail saying why.
 */
export function runCheck(
  spec: CheckSpec,
  address: string,
  port: number,
  signal?: AbortSignal,
): Promise<CheckResult> {
  const timeout = spec.timeout ?? 1000;
  switch (spec.type) {
    case 'http':
      return withTimeout(timeout, signal, (s) => httpCheck(address, port, spec.path ?? '/health', s));
    case 'tcp':
      return withTimeout(timeout, signal, (s) => tcpCheck(address, port, s));
    case 'grpc':
      return withTimeout(timeout, signal, (s) => grpcCheck(address, port, spec.grpcService ?? '', s));
    default:
      return Promise.resolve({
        status: 'critical',
        detail: `unknown check type ${JSON.stringify((spec as { type: unknown }).type)}`,
      });
  }
}
