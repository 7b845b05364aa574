/**
 * The sidecar runs its own app's health checks (Consul's agent model) and reports the
 * combined status over the discovery stream: the worst of all checks, reported when it
 * changes. A TTL check is the sidecar's own heartbeat: passing while the sidecar runs,
 * re-reported every third of its TTL.
 */
import type { NodeCheck } from '../../control/discovery/protocol.ts';
import { runCheck, type CheckResult, type CheckStatus } from '../health/run-check.ts';

const RANK: Record<CheckStatus, number> = { passing: 0, warning: 1, critical: 2 };

export class AppChecks {
  readonly #timers: NodeJS.Timeout[] = [];
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
        this.#timers.push(setInterval(() => this.#emit(true), every));
        continue;
      }
      const spec = { type: c.type, path: c.path, timeout: c.timeout };
      const run = () =>
        void runCheck(spec, app.host, app.port, this.#abort.signal).then((r) => {
          if (this.#abort.signal.aborted) return;
          this.#results.set(c.name, r);
          this.#emit(false);
        });
      run();
      this.#timers.push(setInterval(run, c.interval ?? 10_000));
    }
    for (const t of this.#timers) t.unref();
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
    for (const t of this.#timers) clearInterval(t);
  }
}
