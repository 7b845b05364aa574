import { useState, type FormEvent } from 'react';
import type { ServicesView } from '../api.ts';
import { usePoll } from '../hooks.ts';
import { TapTable } from '../components/tap-table.tsx';
import type { TapFilter } from '../tap.ts';
import { useTap } from '../use-tap.ts';

/** Live requests through the proxies, filterable; "not available" when the control plane has no tap. */
export function TapPage() {
  const initial = Object.fromEntries(new URLSearchParams(location.search)) as TapFilter;
  const [filter, setFilter] = useState<TapFilter>(initial);
  const [paused, setPaused] = useState(false);
  // The tap is per service (it opens that service's proxies' streams).
  const tap = useTap(filter, { paused: paused || !filter.service });
  const services = usePoll<ServicesView>(filter.service ? null : '/v1/stats/services?window=1m');
  const choose = (service: string, namespace: string) => {
    const f = { ...filter, service, namespace };
    setFilter(f);
    history.replaceState(null, '', `/ui/tap?${new URLSearchParams({ service, namespace }).toString()}`);
  };
  const onSubmit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = Object.fromEntries(new FormData(e.currentTarget)) as TapFilter;
    setFilter(f);
    const q = new URLSearchParams(Object.entries(f).filter(([, v]) => v) as [string, string][]).toString();
    history.replaceState(null, '', `/ui/tap${q ? `?${q}` : ''}`);
  };
  return (
    <section className="page" data-testid="tap-page">
      <h1>Live tap</h1>
      <form className="filters" onSubmit={onSubmit} key={`${filter.service}/${filter.namespace}`}>
        <input name="service" placeholder="service" defaultValue={filter.service} />
        <input name="namespace" placeholder="namespace" defaultValue={filter.namespace} />
        <input name="path" placeholder="path prefix" defaultValue={filter.path} />
        <input name="method" placeholder="method" defaultValue={filter.method} size={8} />
        <input name="status" placeholder="status" defaultValue={filter.status} size={6} />
        <button type="submit">Apply</button>
        <button type="button" onClick={() => setPaused((p) => !p)} data-testid="tap-pause">
          {paused ? 'Resume' : 'Pause'}
        </button>
        <button type="button" onClick={tap.clear} data-testid="tap-clear">
          Clear
        </button>
        <span className={`tap-status ${tap.status}`} data-testid="tap-status">
          {!filter.service
            ? 'no service chosen'
            : tap.status === 'streaming'
              ? `streaming · ${tap.total} requests`
              : tap.status}
        </span>
      </form>
      {!filter.service ? (
        <div className="notice" data-testid="tap-choose">
          Choose a service to tap:{' '}
          {(services.data?.services ?? []).map((s) => (
            <button
              key={`${s.namespace}/${s.service}`}
              type="button"
              onClick={() => choose(s.service, s.namespace)}
            >
              {s.service}
            </button>
          ))}
        </div>
      ) : tap.status === 'unavailable' ? (
        <div className="notice" data-testid="tap-unavailable">
          <strong>Tap not available.</strong> {tap.message}. Request figures are still on the topology and
          service pages.
        </div>
      ) : (
        <>
          {tap.status === 'error' ? (
            <div className="notice warn">Tap interrupted: {tap.message}; reconnecting…</div>
          ) : null}
          {tap.status === 'refused' ? (
            <div className="notice warn" role="alert" data-testid="tap-refused">
              Tap refused: {tap.message}. Not retried: sign in with a token that has the{' '}
              <span className="mono">tap</span> permission (an operator&apos;s).
            </div>
          ) : null}
          <TapTable events={tap.events} empty="Waiting for requests…" />
        </>
      )}
    </section>
  );
}
