/**
 * The one place that turns an error into what an API client receives:
 * `{ error: { code, message, problems?, ...details } }` with the code's HTTP status.
 * Store errors map to API codes here, so handlers just let them propagate.
 */
import { ERROR_CODES, HexmeshError, type ErrorCode } from '../../errors/hexmesh-error.ts';
import { ConfigError, type ConfigProblem } from '../../config/load.ts';
import {
  StoreConflictError,
  StoreError,
  StoreLeaseNotFoundError,
  StoreUnavailableError,
} from '../../store/store.ts';

/** A HexmeshError with extra JSON fields for the error body (e.g. what an apply wrote before failing). */
export class ApiError extends HexmeshError {
  readonly details: Readonly<Record<string, unknown>>;
  constructor(
    code: ErrorCode,
    message: string,
    options?: { cause?: unknown; details?: Record<string, unknown> },
  ) {
    super(code, message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.details = Object.freeze({ ...(options?.details ?? {}) });
  }
}

export interface ErrorBody {
  error: { code: string; message: string; problems?: readonly ConfigProblem[]; [k: string]: unknown };
}

/** Map anything thrown by a handler to a status and a JSON body. */
export function errorResponse(err: unknown): { status: number; body: ErrorBody } {
  if (err instanceof ConfigError) {
    // A config problem in a request body is the client's mistake: 400, not the CLI's exit code.
    return {
      status: 400,
      body: { error: { code: err.code, message: err.message, problems: err.problems } },
    };
  }
  if (err instanceof HexmeshError) {
    const details = err instanceof ApiError ? err.details : {};
    return {
      status: ERROR_CODES[err.code].status,
      body: { error: { ...details, code: err.code, message: err.message } },
    };
  }
  if (err instanceof StoreError) return errorResponse(fromStoreError(err));
  const message = `internal control-plane error: ${(err as Error)?.message ?? String(err)}`;
  return { status: 500, body: { error: { code: 'HEXMESH_ERR_INTERNAL', message } } };
}

/** Translate a store error into the API's codes (409, 404, 503). */
export function fromStoreError(err: StoreError): HexmeshError {
  if (err instanceof StoreConflictError)
    return new ApiError('HEXMESH_ERR_CONFLICT', err.message, {
      cause: err,
      details: { key: err.key, expected: err.expected, actual: err.actual },
    });
  if (err instanceof StoreLeaseNotFoundError)
    return new HexmeshError('HEXMESH_ERR_NOT_FOUND', err.message, { cause: err });
  if (err instanceof StoreUnavailableError)
    return new HexmeshError('HEXMESH_ERR_STORE_UNAVAILABLE', `store unavailable: ${err.message}`, {
      cause: err,
    });
  return new HexmeshError('HEXMESH_ERR_INTERNAL', `store error: ${err.message}`, { cause: err });
}

/** Shorthands for handlers. */
export const notFound = (what: string) => new HexmeshError('HEXMESH_ERR_NOT_FOUND', `${what} not found`);
export const badRequest = (message: string) => new HexmeshError('HEXMESH_ERR_BAD_REQUEST', message);
