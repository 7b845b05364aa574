/**
 * A live tap kept open while mounted: events batched into at most 4 renders a second, the
 * newest `keep` kept (bounded memory under a flood), reconnecting after a break.
 */
import { useCallback, useEffect, useState } from 'react';
import { useAuth } from './hooks.ts';
import { streamTap, type TapEvent, type TapFilter } from './tap.ts';

export type TapStatus = 'connecting' | 'streaming' | 'unavailable' | 'error' | 'refused' | 'paused';

export interface TapState {
  events: TapEvent[];
  status: TapStatus;
  message?: string;
  /** Events received since mount or the last clear (including those dropped from `events`). */
  total: number;
  /** Empty the list (the stream goes on). */
  clear: () => void;
}

export function useTap(
  filter: TapFilter,
  opts: { paused?: boolean; keep?: number; accept?: (e: TapEvent) => boolean } = {},
): TapState {
  const keep = opts.keep ?? 500;
  const [state, setState] = useState<Omit<TapState, 'clear'>>({ events: [], status: 'connecting', total: 0 });
  const clear = useCallback(() => setState((s) => ({ ...s, events: [], total: 0 })), []);
  const key = JSON.stringify(filter);
  const accept = opts.accept;
  // A new token (signed in after a 401) reconnects at once.
  const generation = useAuth().generation;
  useEffect(() => {
    if (opts.paused) {
      setState((s) => ({ ...s, status: 'paused' }));
      return;
    }
    const ctl = new AbortController();
    let pending: TapEvent[] = [];
    let received = 0;
    let retry: ReturnType<typeof setTimeout> | undefined;
    const flush = setInterval(() => {
      if (pending.length === 0) return;
      const batch = pending;
      pending = [];
      setState((s) => ({
        ...s,
        status: 'streaming',
        total: s.total + batch.length,
        events: [...batch.reverse(), ...s.events].slice(0, keep),
      }));
    }, 250);
    const run = async () => {
      setState((s) => ({ ...s, status: 'connecting', message: undefined }));
      const end = await streamTap(
        JSON.parse(key) as TapFilter,
        (e) => {
          if (accept && !accept(e)) return;
          received++;
          pending.push(e);
          if (pending.length > keep) pending.splice(0, pending.length - keep);
          if (received === 1) setState((s) => ({ ...s, status: 'streaming' }));
        },
        ctl.signal,
      );
      if (ctl.signal.aborted) return;
      // A refusal (401/403) will not change by itself: shown once, not retried; a new token
      // (the generation) restarts this effect at once.
      if (end.kind === 'error' && (end.status === 401 || end.status === 403))
        return setState((s) => ({ ...s, status: 'refused', message: end.message }));
      if (end.kind === 'unavailable')
        setState((s) => ({ ...s, status: 'unavailable', message: end.message }));
      else
        setState((s) => ({
          ...s,
          status: 'error',
          message: end.kind === 'error' ? end.message : 'the stream ended',
        }));
      // Try again: a later control plane version (or a restarted one) may have it.
      retry = setTimeout(run, end.kind === 'unavailable' ? 15_000 : 3000);
    };
    void run();
    return () => {
      ctl.abort();
      clearInterval(flush);
      clearTimeout(retry);
    };
  }, [key, opts.paused, keep, accept, generation]);
  return { ...state, clear };
}
