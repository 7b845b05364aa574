import type { ServiceStat } from '../api.ts';
import { HEALTH_LABEL, fmtMs, fmtPercent, fmtRps, serviceHealth } from '../format.ts';
import { Link, servicePath } from './link.tsx';
import { LockIcon } from './lock-icon.tsx';

export function ServiceTable(props: { services: ServiceStat[] }) {
  return (
    <table data-testid="services-table">
      <thead>
        <tr>
          <th>service</th>
          <th>namespace</th>
          <th>state</th>
          <th className="num">instances</th>
          <th className="num">success</th>
          <th className="num">rps</th>
          <th className="num">p50</th>
          <th className="num">p99</th>
          <th className="num">mTLS</th>
        </tr>
      </thead>
      <tbody>
        {props.services.map((s) => {
          const h = serviceHealth(s);
          return (
            <tr key={`${s.namespace}/${s.service}`} data-service={s.service}>
              <td>
                <Link to={servicePath(s.namespace, s.service)}>{s.service}</Link>
              </td>
              <td>{s.namespace}</td>
              <td>
                <span className={`pill ${h}`}>{HEALTH_LABEL[h]}</span>
              </td>
              <td className="num">
                {s.stale ? `${s.instances - s.stale}/${s.instances} (${s.stale} stale)` : s.instances}
              </td>
              <td className="num">{fmtPercent(s.successRate)}</td>
              <td className="num svc-rps">{fmtRps(s.rps)}</td>
              <td className="num">{fmtMs(s.latencyMs.p50)}</td>
              <td className="num">{fmtMs(s.latencyMs.p99)}</td>
              <td className="num">
                {fmtPercent(s.tlsPercent, false)}{' '}
                {s.tlsPercent !== null && s.tlsPercent >= 99 ? <LockIcon /> : null}
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}
