/**
 * The sidecar runs its own app's health checks (Consul's agent model) and reports the
 * combined status over the discovery stream: the worst of all checks, reported when it
 * changes. A TTL check is the sidecar's own heartbeat: passing while the sidecar runs,
 * re-reported every third of its TTL.
 *
 * Until a check has passed once, it is retried every second (at most its interval), like a
 * Kubernetes startup probe: an app that needs a few seconds to listen becomes `passing`
 * about a second after it does, not a whole interval later. After its first pass a check
 * runs at its interval. Runs never overlap: the next is scheduled when one ends.
 */
import type { NodeCheck } from '../../control/discovery/protocol.ts';
import { runCheck, type CheckResult, type CheckStatus } from '../health/run-check.ts';

/** The retry period of a check that has not passed yet (capped by its interval). */
export const STARTUP_RETRY_MS = 1000;

const RANK: Record<CheckStatus, number> = { passing: 0, warning: 1, critical: 2 };

export class AppChecks {
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #results = new Map<string, CheckResult>();
  readonly #checks: readonly NodeCheck[];
  readonly #report: (status: CheckStatus, output: string) => void;
  readonly #abort = new AbortController();
  #last = '';

  constructor(
    checks: readonly NodeCheck[],
    app: { host: string; port: number },
    report: (status: CheckStatus, output: string) => void,
  ) {
    this.#checks = checks;
    this.#report = report;
    for (const c of checks) {
      if (c.type === 'ttl') {
        this.#results.set(c.name, { status: 'passing', detail: 'sidecar alive' });
        const every = Math.max(100, Math.floor((c.ttl ?? 30_000) / 3));
        this.#timers.add(setInterval(() => this.#emit(true), every).unref());
        continue;
      }
      const spec = { type: c.type, path: c.path, timeout: c.timeout };
      const interval = c.interval ?? 10_000;
      let passedOnce = false;
      const run = (): void =>
        void runCheck(spec, app.host, app.port, this.#abort.signal).then((r) => {
          if (this.#abort.signal.aborted) return;
          if (r.status === 'passing') passedOnce = true;
          this.#results.set(c.name, r);
          this.#emit(false);
          const t = setTimeout(
            () => {
              this.#timers.delete(t);
              run();
            },
            passedOnce ? interval : Math.min(STARTUP_RETRY_MS, interval),
          ).unref();
          this.#timers.add(t);
        });
      run();
    }
  }

  /** Report once every check has a result, and again whenever the combined status changes. */
  #emit(force: boolean): void {
    if (this.#results.size < this.#checks.length) return;
    let status: CheckStatus = 'passing';
    const parts: string[] = [];
    for (const c of this.#checks) {
      const r = this.#results.get(c.name)!;
      if (RANK[r.status] > RANK[status]) status = r.status;
      parts.push(`${c.name}: ${r.status} (${r.detail})`);
    }
    const output = parts.join('; ');
    const key = `${status}|${output}`;
    if (!force && key === this.#last) return;
    this.#last = key;
    this.#report(status, output);
  }

  close(): void {
    this.#abort.abort();
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }
}
