/**
 * The result every check type returns, Consul-shaped: `warning` still counts as
 * passing for traffic but is reported as such; `detail` says what happened in words
 * an operator can act on (`connect refused by 127.0.0.1:9081`, `HTTP 500 from /health`).
 */
export type CheckStatus = 'passing' | 'warning' | 'critical';

export interface CheckResult {
  readonly status: CheckStatus;
  readonly detail: string;
}

/** `host:port`, with brackets around IPv6 literals. */
export function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** Words for a socket error; `what` names the peer (`127.0.0.1:9081`). */
export function describeSocketError(err: unknown, what: string): string {
  // http2 cancels pending streams with an error whose cause is the socket's.
  const cause = (err as { cause?: unknown } | undefined)?.cause;
  if ((cause as NodeJS.ErrnoException | undefined)?.code) return describeSocketError(cause, what);
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ECONNREFUSED':
      return `connect refused by ${what}`;
    case 'ECONNRESET':
      return `connection reset by ${what}`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `${what} unreachable (${code})`;
    default:
      return `${(err as Error)?.message ?? String(err)} (${what})`;
  }
}

/**
 * Run `fn` with a signal that aborts on `timeoutMs` or on `signal`, and turn the
 * timeout into a critical result naming the limit (`timeout after 1000 ms`).
 * `fn` must settle promptly once its signal aborts.
 */
export async function withTimeout(
  timeoutMs: number,
  signal: AbortSignal | undefined,
  fn: (signal: AbortSignal) => Promise<CheckResult>,
): Promise<CheckResult> {
  const ac = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    ac.abort(new Error(`timeout after ${timeoutMs} ms`));
  }, timeoutMs);
  const onAbort = () => ac.abort(signal?.reason);
  if (signal?.aborted) ac.abort(signal.reason);
  else signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const result = await fn(ac.signal);
    // A result that raced the timer is still a timeout: the check did not finish in time.
    return timedOut ? { status: 'critical', detail: `timeout after ${timeoutMs} ms` } : result;
  } catch (err) {
    if (timedOut) return { status: 'critical', detail: `timeout after ${timeoutMs} ms` };
    if (signal?.aborted) return { status: 'critical', detail: 'check cancelled' };
    return { status: 'critical', detail: (err as Error)?.message ?? String(err) };
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  }
}
