/**
 * gRPC status names by code (grpc/doc/statuscodes.md), as the tap views show a status:
 * `hexmesh tap`'s GRPC column and the dashboard's tap table both read `14 UNAVAILABLE`.
 * No imports: the dashboard's browser bundle takes this module as it is.
 */
export const GRPC_STATUS_NAMES: readonly string[] = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
];

/** `14 UNAVAILABLE` for a status code with a name; any other value as it is. */
export function grpcStatusText(code: string): string {
  const name = GRPC_STATUS_NAMES[Number(code)];
  return name && /^\d+$/.test(code) ? `${code} ${name}` : code;
}
