/**
 * Errors are values with stable codes (as undici's UND_ERR_*). Every error the proxy can
 * turn into a response carries one of these codes; `docs/errors.md` explains each one and
 * a test keeps that page complete.
 */

/** Proxy error codes; the value after `HEXMESH_ERR_` lower-cased with dashes is the `x-hexmesh-error` header. */
export const ERROR_CODES = {
  HEXMESH_ERR_TIMEOUT: { status: 504, grpc: 4, header: 'timeout' },
  HEXMESH_ERR_CONNECT_TIMEOUT: { status: 504, grpc: 14, header: 'connect-timeout' },
  HEXMESH_ERR_CONNECT_FAILED: { status: 502, grpc: 14, header: 'connect-failed' },
  HEXMESH_ERR_UPSTREAM_RESET: { status: 502, grpc: 14, header: 'upstream-reset' },
  HEXMESH_ERR_UPSTREAM_PROTOCOL: { status: 502, grpc: 13, header: 'upstream-protocol' },
  /** mTLS to the destination's sidecar failed: untrusted certificate, refused client certificate, protocol. */
  HEXMESH_ERR_TLS: { status: 502, grpc: 14, header: 'tls' },
  /** The destination's sidecar presented a SPIFFE ID other than the one discovery gave (impersonation). */
  HEXMESH_ERR_TLS_IDENTITY_MISMATCH: { status: 502, grpc: 14, header: 'tls-identity-mismatch' },
  HEXMESH_ERR_NO_HEALTHY_ENDPOINTS: { status: 503, grpc: 14, header: 'no-healthy-endpoints' },
  HEXMESH_ERR_CIRCUIT_OPEN: { status: 503, grpc: 14, header: 'circuit-open' },
  HEXMESH_ERR_OVERLOADED: { status: 503, grpc: 8, header: 'overloaded' },
  HEXMESH_ERR_RATE_LIMITED: { status: 429, grpc: 8, header: 'rate-limited' },
  HEXMESH_ERR_FAULT_INJECTED: { status: 503, grpc: 14, header: 'fault-injected' },
  HEXMESH_ERR_UNKNOWN_SERVICE: { status: 404, grpc: 12, header: 'unknown-service' },
  HEXMESH_ERR_NO_ROUTE: { status: 404, grpc: 12, header: 'no-route' },
  HEXMESH_ERR_BAD_REQUEST: { status: 400, grpc: 3, header: 'bad-request' },
  HEXMESH_ERR_HEADER_TIMEOUT: { status: 408, grpc: 4, header: 'header-timeout' },
  HEXMESH_ERR_DENIED: { status: 403, grpc: 7, header: 'denied' },
  HEXMESH_ERR_UNAUTHENTICATED: { status: 401, grpc: 16, header: 'unauthenticated' },
  HEXMESH_ERR_BODY_TOO_LARGE: { status: 413, grpc: 8, header: 'body-too-large' },
  HEXMESH_ERR_DRAINING: { status: 503, grpc: 14, header: 'draining' },
  HEXMESH_ERR_INTERNAL: { status: 500, grpc: 13, header: 'internal' },
  /** Control-plane API errors (docs/control-api.md). */
  HEXMESH_ERR_NOT_FOUND: { status: 404, grpc: 5, header: 'not-found' },
  HEXMESH_ERR_METHOD_NOT_ALLOWED: { status: 405, grpc: 12, header: 'method-not-allowed' },
  HEXMESH_ERR_CONFLICT: { status: 409, grpc: 10, header: 'conflict' },
  HEXMESH_ERR_STORE_UNAVAILABLE: { status: 503, grpc: 14, header: 'store-unavailable' },
  /** Not request errors: configuration and start-up problems (CLI exit codes). */
  HEXMESH_ERR_CONFIG_INVALID: { status: 500, grpc: 13, header: 'config-invalid' },
  HEXMESH_ERR_LISTEN: { status: 500, grpc: 13, header: 'listen' },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class HexmeshError extends Error {
  readonly code: ErrorCode;
  /**
   * Extra fields a layer wants to report (endpoint, service, timeout ms). `status` / `grpcStatus`,
   * when present (fault injection), are the HTTP status / gRPC status the error mapper must use
   * instead of the code's defaults.
   */
  readonly context: Readonly<Record<string, string | number>>;

  constructor(
    code: ErrorCode,
    message: string,
    options?: { cause?: unknown; context?: Record<string, string | number> },
  ) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'HexmeshError';
    this.code = code;
    this.context = Object.freeze({ ...(options?.context ?? {}) });
  }

  /** The `x-hexmesh-error` header value. */
  get header(): string {
    return ERROR_CODES[this.code].header;
  }

  get status(): number {
    return ERROR_CODES[this.code].status;
  }
}

/** True if nothing was sent upstream, so any request may be retried (Linkerd/Envoy semantics). */
export function isSafeToRetry(err: unknown): boolean {
  return (
    err instanceof HexmeshError &&
    (err.code === 'HEXMESH_ERR_CONNECT_FAILED' || err.code === 'HEXMESH_ERR_CONNECT_TIMEOUT') &&
    err.context.refused !== 'no'
  );
}

/** Wrap an unknown error from a socket or client into a HexmeshError with context. */
export function fromSocketError(err: unknown, endpoint: string, service: string): HexmeshError {
  if (err instanceof HexmeshError) return err;
  const e = err as NodeJS.ErrnoException & { code?: unknown };
  // Only Node's string codes: an abort reason (DOMException) has a numeric `code`.
  const code = typeof e?.code === 'string' ? e.code : '';
  if (
    code === 'ECONNREFUSED' ||
    code === 'EHOSTUNREACH' ||
    code === 'ENETUNREACH' ||
    code === 'EADDRNOTAVAIL'
  )
    return new HexmeshError('HEXMESH_ERR_CONNECT_FAILED', `connect refused by ${endpoint}`, {
      cause: err,
      context: { endpoint, service },
    });
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ETIMEDOUT')
    return new HexmeshError(
      'HEXMESH_ERR_CONNECT_TIMEOUT',
      `connect timeout to ${endpoint} calling ${service}`,
      {
        cause: err,
        context: { endpoint, service },
      },
    );
  if (isTlsFailure(code))
    return new HexmeshError(
      'HEXMESH_ERR_TLS',
      `mTLS to ${endpoint} calling ${service} failed: ${code} ${e?.message ?? ''}`.trimEnd(),
      { cause: err, context: { endpoint, service } },
    );
  return new HexmeshError(
    'HEXMESH_ERR_UPSTREAM_RESET',
    `upstream ${endpoint} reset the request calling ${service}${code ? ` (${code})` : ''}`,
    { cause: err, context: { endpoint, service } },
  );
}

/** OpenSSL alerts and certificate verification failures as Node reports them. */
function isTlsFailure(code: string): boolean {
  return (
    code.startsWith('ERR_SSL_') ||
    code.startsWith('ERR_TLS_') ||
    code.includes('CERT') ||
    code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' ||
    code === 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY' ||
    code === 'SELF_SIGNED_CERT_IN_CHAIN' ||
    code === 'DEPTH_ZERO_SELF_SIGNED_CERT'
  );
}
