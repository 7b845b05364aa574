/**
 * `hexmesh proxy --control ...`: turn command-line flags into the `proxy:` settings and run
 * a sidecar steered by the control plane (no config file).
 */
import { readFile } from 'node:fs/promises';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import type { NodeCheck } from '../../control/discovery/protocol.ts';
import { parseDuration } from '../../config/duration.ts';
import { startControlledProxy } from './controlled-proxy.ts';

export interface ControlFlags {
  control: string;
  service?: string;
  namespace?: string;
  appPort?: string;
  inbound?: string;
  outbound?: string;
  admin?: string;
  label?: string[];
  check?: string[];
  id?: string;
  advertise?: string;
  /** `proxy.federatedTrustDomains` (docs/mtls.md, "Peer identity"). */
  federatedTrustDomain?: string[];
  /** Last good config + certificate (last-good-cache.ts). */
  cacheDir?: string;
  /** Join token for the workload certificate (or HEXMESH_JOIN_TOKEN). */
  joinToken?: string;
  /** A file holding the token, re-read at each use (a projected ServiceAccount token). */
  tokenFile?: string;
  /** PEM file of the CA that vouches for an HTTPS control plane (or env HEXMESH_CONTROL_CA). */
  controlCa?: string;
  /** `proxy.tracing` (docs/observability.md): endpoint turns it on. */
  tracingEndpoint?: string;
  tracingSampleRate?: string;
  tracingServiceName?: string;
  /** `proxy.capture` (docs/kubernetes.md, "Transparent capture"). */
  capture?: boolean;
  outboundTrafficPolicy?: string;
}

function usage(message: string): HexmeshError {
  return new HexmeshError('HEXMESH_ERR_CONFIG_INVALID', `hexmesh proxy: ${message}`);
}

function hostPort(flag: string, v: string): { address: string; port: number } {
  const i = v.lastIndexOf(':');
  const port = Number(v.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port < 0 || port > 65535)
    throw usage(`--${flag} must be host:port (got ${JSON.stringify(v)})`);
  return { address: v.slice(0, i), port };
}

/** An origin-form path on the app: `/` first (not `//`), no spaces or control characters. */
const CHECK_PATH = /^\/(?!\/)[^\s\p{Cc}]*$/u;

/** `--check http:/health`, `--check tcp`, `--check grpc`, `--check ttl:30s`; interval 10 s. */
function parseCheck(v: string, i: number): NodeCheck {
  const [type, arg] = [v.split(':', 1)[0], v.slice(v.indexOf(':') + 1)];
  const has = v.includes(':');
  if (type === 'http') {
    const path = has ? arg : '/health';
    // The catalog's rule for a check path (catalog/instance.ts, zod, not loaded here): the
    // control plane would refuse the hello, and the proxy would retry it for ever.
    if (!CHECK_PATH.test(path))
      throw usage(`--check http:<path> must be a path on the app such as /health (got ${JSON.stringify(v)})`);
    return { name: `check-${i}`, type, path };
  }
  if (type === 'tcp' || type === 'grpc') return { name: `check-${i}`, type };
  if (type === 'ttl') {
    const ttl = parseDuration(has ? arg : '30s');
    if (ttl === undefined) throw usage(`--check ttl:<duration> (got ${JSON.stringify(v)})`);
    return { name: `check-${i}`, type, ttl };
  }
  throw usage(`--check must be http[:path], tcp, grpc or ttl[:duration] (got ${JSON.stringify(v)})`);
}

/** `--tracing-*` flags into `proxy.tracing` (validated with the config schema afterwards). */
function tracingSettings(f: ControlFlags): { tracing?: Record<string, unknown> } {
  if (!f.tracingEndpoint) {
    if (f.tracingSampleRate !== undefined || f.tracingServiceName !== undefined)
      throw usage('--tracing-sample-rate and --tracing-service-name need --tracing-endpoint');
    return {};
  }
  const rate = f.tracingSampleRate === undefined ? undefined : Number(f.tracingSampleRate);
  if (rate !== undefined && !(rate >= 0 && rate <= 1))
    throw usage(`--tracing-sample-rate must be 0..1 (got ${JSON.stringify(f.tracingSampleRate)})`);
  return {
    tracing: {
      endpoint: f.tracingEndpoint,
      ...(rate !== undefined && { sampleRate: rate }),
      ...(f.tracingServiceName && { serviceName: f.tracingServiceName }),
    },
  };
}

/** `--capture` / `--outbound-traffic-policy` into `proxy.capture`. */
function captureSettings(f: ControlFlags): { capture?: { outboundTrafficPolicy: string } } {
  if (!f.capture) {
    if (f.outboundTrafficPolicy !== undefined) throw usage('--outbound-traffic-policy needs --capture');
    return {};
  }
  const policy = f.outboundTrafficPolicy ?? 'ALLOW_ANY';
  if (policy !== 'ALLOW_ANY' && policy !== 'REGISTRY_ONLY')
    throw usage(
      `--outbound-traffic-policy must be ALLOW_ANY or REGISTRY_ONLY (got ${JSON.stringify(policy)})`,
    );
  return { capture: { outboundTrafficPolicy: policy } };
}

/** Build the settings from flags, start the proxy, and wire signals (SIGTERM: leave, drain, exit). */
export async function runControlledProxy(f: ControlFlags): Promise<void> {
  if (!f.service) throw usage('--service is required with --control');
  const urls = f.control
    .split(',')
    .map((u) => u.trim())
    .filter(Boolean);
  const labels: Record<string, string> = {};
  for (const l of f.label ?? []) {
    const eq = l.indexOf('=');
    if (eq <= 0) throw usage(`--label must be key=value (got ${JSON.stringify(l)})`);
    labels[l.slice(0, eq)] = l.slice(eq + 1);
  }
  const appPort = f.appPort === undefined ? undefined : Number(f.appPort);
  if (appPort !== undefined && (!Number.isInteger(appPort) || appPort < 1 || appPort > 65535))
    throw usage(`--app-port must be 1..65535 (got ${JSON.stringify(f.appPort)})`);
  const settings = {
    service: f.service,
    ...(f.namespace ? { namespace: f.namespace } : {}),
    ...(f.inbound ? { inbound: hostPort('inbound', f.inbound) } : {}),
    ...(f.outbound ? { outbound: hostPort('outbound', f.outbound) } : {}),
    ...(f.admin ? { admin: hostPort('admin', f.admin) } : {}),
    ...(appPort ? { app: { port: appPort } } : {}),
    ...(f.federatedTrustDomain?.length ? { federatedTrustDomains: f.federatedTrustDomain } : {}),
    ...tracingSettings(f),
    ...captureSettings(f),
  };
  const joinToken = f.joinToken ?? process.env.HEXMESH_JOIN_TOKEN;
  const caFile = f.controlCa ?? process.env.HEXMESH_CONTROL_CA;
  const controlCaPem = caFile ? await readFile(caFile, 'utf8') : undefined;
  const p = await startControlledProxy({
    control: urls,
    settings,
    labels,
    checks: (f.check ?? []).map(parseCheck),
    ...(f.id ? { id: f.id } : {}),
    ...(f.advertise ? { advertise: f.advertise } : {}),
    ...(f.cacheDir ? { cacheDir: f.cacheDir } : {}),
    ...(joinToken || f.tokenFile
      ? {
          identity: {
            ...(joinToken ? { joinToken } : { tokenFile: f.tokenFile }),
            ...(controlCaPem ? { controlCaPem } : {}),
          },
        }
      : {}),
    onExit: () => process.exit(0),
    client: { log: (l) => process.stderr.write(`hexmesh proxy: ${l}\n`) },
  });
  const leave = () => void p.shutdown();
  process.once('SIGTERM', leave);
  process.once('SIGINT', leave);
  const a = p.addr;
  process.stdout.write(
    `hexmesh proxy ${f.service} (${p.id}): outbound=${a.outbound.address}:${a.outbound.port} inbound=${a.inbound.address}:${a.inbound.port} admin=${a.admin.port} control=${urls.join(',')}\n`,
  );
}
