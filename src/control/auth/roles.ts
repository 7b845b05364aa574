/**
 * What the control plane's API lets each caller do. A route declares one permission (or
 * `public`); a role is a set of permissions. Roles are coarse on purpose (Consul's built-in
 * policies, Kubernetes' admin/edit/view): admin, operator, viewer for people and scripts,
 * workload for a proxy, which is further scoped to its own identity by the handlers.
 */

export const PERMISSIONS = [
  /** Read mesh resources (routes, policies, services). */
  'resources:read',
  /** Create, replace, delete resources; `POST /v1/apply`. */
  'resources:write',
  /** Read the catalog (services, instances), Prometheus SD, connected proxies. */
  'catalog:read',
  /** Register, deregister, heartbeat and report status of instances (workloads: their own only). */
  'catalog:write',
  /** List KV keys (not their values). */
  'kv:list',
  /** Read KV values (and watch them). */
  'kv:read',
  /** Write and delete KV entries. */
  'kv:write',
  /** Embedded metrics views (`/v1/stats/*`). */
  'stats:read',
  /** Live request tap (may show request headers). */
  'tap',
  /** Read rollouts and their status. */
  'rollouts:read',
  /** Start, pause, promote, abort rollouts. */
  'rollouts:write',
  /** CA authorities, issued certificates, join-token list, rotation status. */
  'identity:read',
  /** Join tokens (create, revoke) and CA root rotation. */
  'identity:admin',
  /** API tokens (create, list, revoke). */
  'tokens:admin',
  /** Open the discovery stream (workloads: for their own service only). */
  'discovery',
] as const;

export type Permission = (typeof PERMISSIONS)[number];

export const ROLES = ['admin', 'operator', 'viewer', 'workload'] as const;
export type Role = (typeof ROLES)[number];

const VIEWER: readonly Permission[] = [
  'resources:read',
  'catalog:read',
  'kv:list',
  'stats:read',
  'rollouts:read',
  'identity:read',
];

const OPERATOR: readonly Permission[] = [
  ...VIEWER,
  'resources:write',
  'catalog:write',
  'kv:read',
  'kv:write',
  'tap',
  'rollouts:write',
  'discovery',
];

/**
 * Role → permissions. A workload's permissions are further limited to its own identity
 * (service = service account, same namespace) by `requireSelf` in the handlers and the
 * discovery hello; a workload known only by its join token gets `discovery` alone. An API
 * token of role workload acts as the identity it was created for (`subject`); one without
 * is refused (api-auth.ts).
 */
export const ROLE_PERMISSIONS: Readonly<Record<Role, ReadonlySet<Permission>>> = Object.freeze({
  admin: new Set<Permission>(PERMISSIONS),
  operator: new Set<Permission>(OPERATOR),
  viewer: new Set<Permission>(VIEWER),
  workload: new Set<Permission>(['discovery', 'catalog:write']),
});

/** The permissions a join token stands for: the discovery hello of its own service (the certificate request proves itself). */
export const JOIN_TOKEN_PERMISSIONS: ReadonlySet<Permission> = new Set<Permission>(['discovery']);

export function isRole(v: unknown): v is Role {
  return typeof v === 'string' && (ROLES as readonly string[]).includes(v);
}
