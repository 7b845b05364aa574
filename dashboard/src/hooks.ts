/**
 * Polling and routing hooks. A poll keeps its last data when a refresh fails (the page greys
 * it through the connection state) and retries on the same period; it stops on unmount.
 */
import { useEffect, useRef, useState, useSyncExternalStore } from 'react';
import { ApiError, REFRESH_MS, connection, getIndexed, getJson, type ConnectionState } from './api.ts';
import { auth, type AuthState } from './auth.ts';

export interface Poll<T> {
  data: T | undefined;
  /** The last refresh's error (data, if any, is from an earlier one). */
  error: Error | undefined;
  /** When data was last refreshed (ms). */
  updatedAt: number | undefined;
}

/** GET `path` now and every `everyMs` while mounted; `null` pauses. */
export function usePoll<T>(path: string | null, everyMs = REFRESH_MS): Poll<T> {
  const [state, setState] = useState<Poll<T>>({ data: undefined, error: undefined, updatedAt: undefined });
  const pathRef = useRef(path);
  const generation = useAuth().generation;
  useEffect(() => {
    if (pathRef.current !== path) {
      pathRef.current = path;
      setState({ data: undefined, error: undefined, updatedAt: undefined });
    }
    if (path === null) return;
    const ctl = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = async () => {
      try {
        const data = await getJson<T>(path, ctl.signal);
        setState({ data, error: undefined, updatedAt: Date.now() });
      } catch (err) {
        if (ctl.signal.aborted) return;
        setState((s) => ({ ...s, error: err as Error }));
      }
      if (!ctl.signal.aborted) timer = setTimeout(tick, everyMs);
    };
    void tick();
    return () => {
      ctl.abort();
      clearTimeout(timer);
    };
  }, [path, everyMs, generation]);
  return state;
}

/** How long a blocking query waits on the server (below its 30 s request timeout). */
const BLOCK_WAIT = '25s';

/**
 * GET `path` and then follow it with blocking queries (`?index=N&wait=25s`): a change shows
 * as soon as the store has it, with no polling in between. After a failure it waits
 * `retryMs` and starts again without an index (the revision may have gone backwards).
 */
export function useBlocking<T>(path: string | null, retryMs = REFRESH_MS): Poll<T> {
  const [state, setState] = useState<Poll<T>>({ data: undefined, error: undefined, updatedAt: undefined });
  const pathRef = useRef(path);
  const generation = useAuth().generation;
  useEffect(() => {
    if (pathRef.current !== path) {
      pathRef.current = path;
      setState({ data: undefined, error: undefined, updatedAt: undefined });
    }
    if (path === null) return;
    const ctl = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let index: number | undefined;
    const sep = path.includes('?') ? '&' : '?';
    const tick = async () => {
      try {
        const r = await getIndexed<T>(
          index === undefined ? path : `${path}${sep}index=${index}&wait=${BLOCK_WAIT}`,
          ctl.signal,
        );
        // A revision that went backwards (a restored store): read afresh next time.
        index = r.index !== undefined && (index === undefined || r.index >= index) ? r.index : undefined;
        setState({ data: r.data, error: undefined, updatedAt: Date.now() });
        if (!ctl.signal.aborted) timer = setTimeout(tick, index === undefined ? retryMs : 0);
      } catch (err) {
        if (ctl.signal.aborted) return;
        index = undefined;
        setState((s) => ({ ...s, error: err as Error }));
        timer = setTimeout(tick, retryMs);
      }
    };
    void tick();
    return () => {
      ctl.abort();
      clearTimeout(timer);
    };
  }, [path, retryMs, generation]);
  return state;
}

/** The tab's sign-in state (auth.ts). */
export function useAuth(): AuthState {
  return useSyncExternalStore(auth.subscribe, auth.get);
}

export function useConnection(): ConnectionState {
  return useSyncExternalStore(connection.subscribe, connection.get);
}

/** A message for an error of a poll, or undefined when it is only the connection (the banner says that). */
export function apiProblem(err: Error | undefined): string | undefined {
  if (!err) return undefined;
  if (err instanceof ApiError) return `${err.message} (${err.code})`;
  return undefined;
}

// ---- routing: History API under /ui/ (the server answers index.html for every /ui/* path)

const listeners = new Set<() => void>();
window.addEventListener('popstate', () => listeners.forEach((fn) => fn()));

export function navigate(to: string): void {
  if (to === location.pathname + location.search) return;
  history.pushState(null, '', to);
  listeners.forEach((fn) => fn());
}

export function useLocation(): string {
  return useSyncExternalStore(
    (fn) => {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    () => location.pathname,
  );
}
