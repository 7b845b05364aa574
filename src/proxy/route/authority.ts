/**
 * Map a Host / :authority to the destination service, the way Kubernetes DNS names a Service:
 * `reviews`, `reviews.<ns>`, `reviews.<ns>.svc`, `reviews.<ns>.svc.cluster.local`, each with
 * an optional `:port` and an optional trailing dot, in any case.
 *
 * The one normalisation of hosts: routing (`parseAuthority`) and authorization's `hosts`
 * (`normalizeHost`) both read an authority here, so a spelling that reaches a service
 * (`Reviews.PROD.`, `reviews:80`) is the same service to a policy (a DENY on `reviews`
 * cannot be stepped around by writing the host another way).
 */

/** The service an authority names. */
export interface AuthorityTarget {
  name: string;
  namespace: string;
  port?: number;
}

function isLabel(s: string): boolean {
  if (s.length === 0 || s.length > 63) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const ok = (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || (c === 45 && i > 0 && i < s.length - 1);
    if (!ok) return false;
  }
  return true;
}

function isDigits(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return s.length > 0;
}

/**
 * Parse `authority` into `{ name, namespace, port? }`; a bare name gets `namespace` (the
 * client's own, as Kubernetes search domains do). Returns undefined for IP literals (IPv4 or
 * IPv6), a bad port, or anything that is not one of the service name shapes above.
 */
export function parseAuthority(authority: string, namespace: string): AuthorityTarget | undefined {
  if (authority.length === 0 || authority.charCodeAt(0) === 91 /* [ */) return undefined; // IPv6 literal
  let host = authority;
  let port: number | undefined;
  const colon = authority.indexOf(':');
  if (colon >= 0) {
    if (authority.indexOf(':', colon + 1) >= 0) return undefined; // unbracketed IPv6 or garbage
    const p = authority.slice(colon + 1);
    if (!isDigits(p) || p.length > 5) return undefined;
    port = Number(p);
    if (port < 1 || port > 65535) return undefined;
    host = authority.slice(0, colon);
  }
  host = host.toLowerCase();
  if (host.endsWith('.')) host = host.slice(0, -1);
  const labels = host.split('.');
  for (const l of labels) if (!isLabel(l)) return undefined;
  if (labels.every(isDigits)) return undefined; // IPv4 literal (or a number)
  let target: AuthorityTarget | undefined;
  switch (labels.length) {
    case 1:
      target = { name: labels[0], namespace };
      break;
    case 2:
      target = { name: labels[0], namespace: labels[1] };
      break;
    case 3:
      if (labels[2] === 'svc') target = { name: labels[0], namespace: labels[1] };
      break;
    case 5:
      if (labels[2] === 'svc' && labels[3] === 'cluster' && labels[4] === 'local')
        target = { name: labels[0], namespace: labels[1] };
      break;
  }
  if (target && port !== undefined) target.port = port;
  return target;
}

/** An authority as authorization compares it (see normalizeHost). */
export interface NormalizedHost {
  /** Lower-case host without port and trailing dot; an IPv6 literal keeps its brackets. */
  readonly host: string;
  /** The explicit port, if the authority has one. */
  readonly port: number | undefined;
  /**
   * The service's full name, `<name>.<namespace>.svc.cluster.local`, when the host names a
   * service the way routing reads it (a bare name in `namespace`); otherwise `host`.
   */
  readonly fqdn: string;
}

/** `<name>.<namespace>.svc.cluster.local`. */
export function serviceFqdn(t: AuthorityTarget): string {
  return `${t.name}.${t.namespace}.svc.cluster.local`;
}

/**
 * Normalise an authority (a Host header or an authorization `hosts` entry) with the same
 * reading as `parseAuthority`: `svc.`, `Svc.NS.`, `svc:80` and `svc.ns.svc.cluster.local.`
 * all have the fqdn `svc.ns.svc.cluster.local` (`ns` = `namespace` for a bare name).
 * Never fails: what is not a service name is compared as a lower-case host.
 */
export function normalizeHost(authority: string, namespace: string): NormalizedHost {
  const a = authority.trim().toLowerCase();
  let host = a;
  let portText: string | undefined;
  if (a.startsWith('[')) {
    const close = a.indexOf(']');
    if (close > 0) {
      host = a.slice(0, close + 1);
      if (a.charCodeAt(close + 1) === 58 /* : */) portText = a.slice(close + 2);
    }
  } else {
    const colon = a.indexOf(':');
    // One colon: host:port. More (a bare IPv6 literal, garbage): all of it is the host.
    if (colon >= 0 && a.indexOf(':', colon + 1) < 0) {
      host = a.slice(0, colon);
      portText = a.slice(colon + 1);
    }
  }
  while (host.endsWith('.')) host = host.slice(0, -1);
  const n = portText !== undefined && isDigits(portText) && portText.length <= 5 ? Number(portText) : NaN;
  const port = n >= 1 && n <= 65535 ? n : undefined;
  const target = parseAuthority(host, namespace);
  return { host, port, fqdn: target ? serviceFqdn(target) : host };
}
