/**
 * Which requests a tap viewer wants: parsed once from the query when the viewer connects,
 * then matched per request with plain comparisons (no regex, no allocation).
 */
import { HexmeshError } from '../../errors/hexmesh-error.ts';

export interface TapFilter {
  /** Matches the source or the destination service. */
  service?: string;
  /** Path prefix (element-agnostic, as typed: `/api` matches `/api` and `/apis`). */
  path?: string;
  /** Upper-case method. */
  method?: string;
  /** Inclusive status range (`5xx` → 500..599, `404` → 404..404). */
  status?: readonly [number, number];
  direction?: 'inbound' | 'outbound';
}

/** The fields of a request a filter looks at. */
export interface TapSubject {
  srcService: string;
  dstService: string;
  path: string;
  method: string;
  status: number;
  direction: string;
}

function bad(message: string): HexmeshError {
  return new HexmeshError('HEXMESH_ERR_CONFIG_INVALID', `tap: ${message}`);
}

/** `5xx`, `4XX` or a three-digit status. */
export function parseStatus(v: string): readonly [number, number] {
  if (/^[1-5]xx$/i.test(v)) {
    const base = Number(v[0]) * 100;
    return [base, base + 99];
  }
  const n = Number(v);
  if (/^\d{3}$/.test(v) && n >= 100 && n <= 599) return [n, n];
  throw bad(`status must be like 5xx or 503 (got ${JSON.stringify(v)})`);
}

/** Build a filter from `service`, `path`, `method`, `status`, `direction` query parameters. */
export function parseTapFilter(q: URLSearchParams): TapFilter {
  const f: TapFilter = {};
  const service = q.get('service');
  if (service) f.service = service;
  const path = q.get('path');
  if (path) {
    if (!path.startsWith('/')) throw bad(`path must start with / (got ${JSON.stringify(path)})`);
    f.path = path;
  }
  const method = q.get('method');
  if (method) {
    if (!/^[A-Za-z]{1,20}$/.test(method))
      throw bad(`method must be a word like GET (got ${JSON.stringify(method)})`);
    f.method = method.toUpperCase();
  }
  const status = q.get('status');
  if (status) f.status = parseStatus(status);
  const direction = q.get('direction');
  if (direction) {
    if (direction !== 'inbound' && direction !== 'outbound')
      throw bad(`direction must be inbound or outbound (got ${JSON.stringify(direction)})`);
    f.direction = direction;
  }
  return f;
}

export function matches(f: TapFilter, s: TapSubject): boolean {
  if (f.service !== undefined && f.service !== s.srcService && f.service !== s.dstService) return false;
  if (f.method !== undefined && f.method !== s.method) return false;
  if (f.status !== undefined && (s.status < f.status[0] || s.status > f.status[1])) return false;
  if (f.direction !== undefined && f.direction !== s.direction) return false;
  if (f.path !== undefined && !s.path.startsWith(f.path)) return false;
  return true;
}

/** The filter back as query parameters (to forward it to proxies). */
export function filterQuery(f: TapFilter): Record<string, string> {
  const q: Record<string, string> = {};
  if (f.service) q.service = f.service;
  if (f.path) q.path = f.path;
  if (f.method) q.method = f.method;
  if (f.status) q.status = f.status[0] === f.status[1] ? String(f.status[0]) : `${f.status[0] / 100}xx`;
  if (f.direction) q.direction = f.direction;
  return q;
}
