/**
 * Certificate expiry is the anchors' classic outage: these findings feed `hexmesh check`.
 * Roots and intermediates warn 30 days before they expire; a workload certificate warns
 * with less than 6 h left, or when its renewal (due at half its lifetime) is overdue.
 */
import type { AuthorityInfo, IssuedRecord } from './ca.ts';

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface CheckResult {
  readonly name: string;
  readonly status: CheckStatus;
  readonly message: string;
}

export interface ExpiryThresholds {
  /** Warn when a root or intermediate has less than this left (default 30 days). */
  caWarnMs?: number;
  /** Warn when a workload certificate has less than this left (default 6 h). */
  workloadWarnMs?: number;
}

const DAY = 86_400_000;

function left(ms: number): string {
  if (ms >= 2 * DAY) return `${Math.floor(ms / DAY)} days`;
  if (ms >= 2 * 3_600_000) return `${Math.floor(ms / 3_600_000)} h`;
  return `${Math.max(0, Math.floor(ms / 60_000))} min`;
}

/** One finding per root and intermediate, and one summary (plus one per problem) for workload certificates. */
export function certificateFindings(
  authorities: readonly AuthorityInfo[],
  issued: readonly IssuedRecord[],
  now: number,
  t: ExpiryThresholds = {},
): CheckResult[] {
  const caWarn = t.caWarnMs ?? 30 * DAY;
  const wlWarn = t.workloadWarnMs ?? 6 * 3_600_000;
  const out: CheckResult[] = [];
  for (const a of authorities)
    for (const [kind, notAfter] of [
      ['root', a.root.notAfter],
      ['intermediate', a.intermediate.notAfter],
    ] as const) {
      const rest = Date.parse(notAfter) - now;
      const name = `ca-${kind} ${a.id}${a.active ? '' : ' (old)'}`;
      if (rest <= 0) out.push({ name, status: 'fail', message: `expired at ${notAfter}` });
      else if (rest < caWarn)
        out.push({
          name,
          status: 'warn',
          message: `expires in ${left(rest)} (${notAfter}): ${kind === 'root' ? 'rotate it' : 'rotate the CA'} now (hexmesh identity rotate start)`,
        });
      else out.push({ name, status: 'ok', message: `valid until ${notAfter} (${left(rest)})` });
    }
  let problems = 0;
  for (const r of issued) {
    const end = Date.parse(r.notAfter);
    const start = Date.parse(r.issuedAt);
    const life = end - start;
    const rest = end - now;
    const name = `workload-cert ${r.proxyId}`;
    // Renewal is due at half the lifetime; allow a tenth of it (at least a minute) for retries.
    const overdue = now > start + life / 2 + Math.max(60_000, life / 10);
    if (rest <= 0) out.push({ name, status: 'fail', message: `${r.spiffeId}: expired at ${r.notAfter}` });
    else if (rest < wlWarn)
      out.push({ name, status: 'warn', message: `${r.spiffeId}: expires in ${left(rest)} (${r.notAfter})` });
    else if (overdue)
      out.push({
        name,
        status: 'warn',
        message: `${r.spiffeId}: renewal overdue (due at half its lifetime; the proxy cannot reach the CA, or is gone); expires ${r.notAfter}`,
      });
    else continue;
    problems++;
  }
  if (!problems)
    out.push({
      name: 'workload-certs',
      status: 'ok',
      message: `${issued.length} live workload certificate(s), none near expiry or overdue for renewal`,
    });
  return out;
}
