/**
 * Transparent capture: the nat-table rules that send a pod's TCP through its sidecar, as
 * Istio's `istio-iptables` and Linkerd's `proxy-init` write them. Run once per pod (the
 * injected `hexmesh-capture` init container, or `hexmesh capture` by hand) in the pod's
 * network namespace, as root with NET_ADMIN.
 *
 *   PREROUTING → HEXMESH_INBOUND  → (excluded port: RETURN) → HEXMESH_IN_REDIRECT → :inbound
 *   OUTPUT     → HEXMESH_OUTPUT   → (proxy uid/gid, loopback, excluded port/CIDR: RETURN)
 *                                → HEXMESH_REDIRECT → :outbound
 *
 * The proxy's own uid is excluded, so its connections to the real destinations leave the pod
 * instead of coming back to its outbound listener (a loop). The proxy recovers where each
 * redirected connection was going with SO_ORIGINAL_DST (original-destination.ts).
 *
 * Idempotent: the rules go in with `iptables-restore --noflush`; declaring a chain flushes it,
 * and the jumps from PREROUTING/OUTPUT are added only when not already there, so a re-run (a
 * restarted init container) replaces the rules instead of stacking a second copy.
 */
import { spawnSync } from 'node:child_process';
import { isIP } from 'node:net';
import { z } from 'zod';
import { ConfigError } from '../../config/config-error.ts';

export const CHAINS = {
  inbound: 'HEXMESH_INBOUND',
  inboundRedirect: 'HEXMESH_IN_REDIRECT',
  output: 'HEXMESH_OUTPUT',
  redirect: 'HEXMESH_REDIRECT',
} as const;

const port = z.number().int().min(1).max(65535);
const cidr = z.string().refine(isCidr, 'must be an IPv4 or IPv6 CIDR (10.0.0.0/8, fd00::/8) or address');

export const captureOptionsSchema = z
  .object({
    /** The uid the proxy runs as: its traffic is never redirected (injector.ts PROXY_UID). */
    proxyUid: z.number().int().min(0),
    /** Also exclude this gid (Istio excludes both). */
    proxyGid: z.number().int().min(0).optional(),
    /** The proxy's inbound listener (injector.ts INBOUND_PORT). */
    inboundPort: port.default(4143),
    /** The proxy's outbound listener (127.0.0.1:4140). */
    outboundPort: port.default(4140),
    /** Inbound ports redirected: `*` (every port) or a list. */
    inboundPorts: z.union([z.literal('*'), z.array(port)]).default('*'),
    /** Inbound ports that reach the app directly (health probes, metrics scrapes). */
    excludeInboundPorts: z.array(port).default([]),
    /** Destination ports the app reaches directly (a database outside the mesh). */
    excludeOutboundPorts: z.array(port).default([]),
    /** Destination networks the app reaches directly. */
    excludeOutboundCidrs: z.array(cidr).default([]),
  })
  .strict();

export type CaptureOptions = z.infer<typeof captureOptionsSchema>;

/** Validate once, at the edge: an invalid value is reported by name. */
export function captureOptions(input: unknown): CaptureOptions {
  const r = captureOptionsSchema.safeParse(input);
  if (!r.success)
    throw new ConfigError(
      'capture options',
      r.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message, value: undefined })),
    );
  return Object.freeze(r.data);
}

function isCidr(v: string): boolean {
  const [addr, bits, ...rest] = v.split('/');
  const family = isIP(addr);
  if (!family || rest.length) return false;
  if (bits === undefined) return true;
  const n = Number(bits);
  return /^\d+$/.test(bits) && n >= 0 && n <= (family === 4 ? 32 : 128);
}

/** The jumps from the built-in chains into ours (compared verbatim with iptables-save's lines). */
export function jumpRules(): string[] {
  return [`-A PREROUTING -p tcp -j ${CHAINS.inbound}`, `-A OUTPUT -p tcp -j ${CHAINS.output}`];
}

/** The rules of our chains for one address family, as `iptables-restore` lines (no jumps). */
export function chainRules(o: CaptureOptions, family: 4 | 6): string[] {
  const rules: string[] = [];
  const inb = (r: string) => rules.push(`-A ${CHAINS.inbound} ${r}`);
  const out = (r: string) => rules.push(`-A ${CHAINS.output} ${r}`);
  // Inbound: what arrives at the pod from outside it.
  // Already addressed to the proxy (a peer sidecar dialling the mesh port): leave it.
  inb(`-p tcp --dport ${o.inboundPort} -j RETURN`);
  for (const p of o.excludeInboundPorts) inb(`-p tcp --dport ${p} -j RETURN`);
  if (o.inboundPorts === '*') inb(`-p tcp -j ${CHAINS.inboundRedirect}`);
  else for (const p of o.inboundPorts) inb(`-p tcp --dport ${p} -j ${CHAINS.inboundRedirect}`);
  rules.push(`-A ${CHAINS.inboundRedirect} -p tcp -j REDIRECT --to-ports ${o.inboundPort}`);
  // Outbound: what the pod's processes connect to.
  // The proxy itself, first: its connections to the real destination must leave the pod.
  out(`-m owner --uid-owner ${o.proxyUid} -j RETURN`);
  if (o.proxyGid !== undefined) out(`-m owner --gid-owner ${o.proxyGid} -j RETURN`);
  // Loopback (127.0.0.1, ::1, the pod calling its own address): local, never meshed. The
  // proxy's app connections (inbound → 127.0.0.1:<app port>) take this way too.
  out('-o lo -j RETURN');
  for (const p of o.excludeOutboundPorts) out(`-p tcp --dport ${p} -j RETURN`);
  for (const c of o.excludeOutboundCidrs) if (isIP(c.split('/')[0]) === family) out(`-d ${c} -j RETURN`);
  out(`-j ${CHAINS.redirect}`);
  rules.push(`-A ${CHAINS.redirect} -p tcp -j REDIRECT --to-ports ${o.outboundPort}`);
  return rules;
}

/**
 * The `iptables-restore --noflush` input. `present`: the nat table as `iptables-save -t nat`
 * prints it now; jumps already in it are not added again.
 */
export function restoreScript(o: CaptureOptions, family: 4 | 6, present = ''): string {
  const have = new Set(present.split('\n').map((l) => l.trim()));
  const lines = [
    '*nat',
    // A declared chain is created, or flushed when it exists: our rules are replaced whole.
    ...Object.values(CHAINS).map((c) => `:${c} - [0:0]`),
    ...chainRules(o, family),
    ...jumpRules().filter((j) => !have.has(j)),
    'COMMIT',
  ];
  return lines.join('\n') + '\n';
}

/** The input that takes every rule out again (`hexmesh capture --remove`). */
export function removeScript(present: string): string {
  const have = present.split('\n').map((l) => l.trim());
  const chains = Object.values(CHAINS).filter((c) => have.some((l) => l.startsWith(`:${c} `)));
  const lines = ['*nat'];
  // Every copy of a jump (an older tool may have added one twice).
  for (const j of jumpRules()) for (const l of have) if (l === j) lines.push(j.replace(/^-A /, '-D '));
  for (const c of chains) lines.push(`-F ${c}`);
  for (const c of chains) lines.push(`-X ${c}`);
  lines.push('COMMIT');
  return lines.join('\n') + '\n';
}

interface Tools {
  save: string;
  restore: string;
}

const TOOLS: Record<4 | 6, Tools> = {
  4: { save: 'iptables-save', restore: 'iptables-restore' },
  6: { save: 'ip6tables-save', restore: 'ip6tables-restore' },
};

function run(cmd: string, args: string[], input?: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input, timeout: 30_000 });
  if (r.error)
    throw new Error(
      `${cmd}: ${(r.error as NodeJS.ErrnoException).code === 'ENOENT' ? 'not installed (the iptables package)' : r.error.message}`,
    );
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** The nat table now, as iptables-save prints it. */
export function currentNat(family: 4 | 6 = 4): string {
  return run(TOOLS[family].save, ['-t', 'nat']);
}

/** Install (or replace) the rules in this network namespace. Returns what was applied. */
export function applyCapture(o: CaptureOptions, family: 4 | 6 = 4): string {
  const script = restoreScript(o, family, currentNat(family));
  run(TOOLS[family].restore, ['--noflush'], script);
  return script;
}

/** Take the rules out of this network namespace (nothing to do when none are there). */
export function removeCapture(family: 4 | 6 = 4): string {
  const script = removeScript(currentNat(family));
  if (script.split('\n').length > 3) run(TOOLS[family].restore, ['--noflush'], script);
  return script;
}
