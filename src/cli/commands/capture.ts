/** `hexmesh capture`: write the transparent-capture rules in this network namespace. */
import { Command } from 'commander';
import { ConfigError } from '../../config/load.ts';
import { EXIT } from '../exit-codes.ts';

interface CaptureFlags {
  proxyUid: string;
  proxyGid?: string;
  inboundPort: string;
  outboundPort: string;
  inboundPorts: string;
  excludeInboundPorts?: string;
  excludeOutboundPorts?: string;
  excludeOutboundCidrs?: string;
  ipv6?: boolean;
  dryRun?: boolean;
  remove?: boolean;
}

function int(flag: string, v: string): number {
  if (!/^\d+$/.test(v.trim()))
    throw new ConfigError('hexmesh capture', [{ path: `--${flag}`, message: 'must be a number', value: v }]);
  return Number(v);
}

/** `80,443, 8080` → numbers; empty → []. */
function ports(flag: string, v: string | undefined): number[] {
  return (v ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)
    .map((p) => int(flag, p));
}

function list(v: string | undefined): string[] {
  return (v ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
}

export function captureCommand(): Command {
  return new Command('capture')
    .description(
      "redirect this network namespace's TCP through the sidecar (iptables nat rules; the injected init container runs this)",
    )
    .option('--proxy-uid <uid>', "the proxy's uid: its own traffic is never redirected", '2102')
    .option('--proxy-gid <gid>', 'also never redirect traffic of this gid')
    .option('--inbound-port <port>', "the proxy's inbound listener", '4143')
    .option('--outbound-port <port>', "the proxy's outbound listener", '4140')
    .option('--inbound-ports <ports>', 'inbound ports to redirect, comma-separated, or * for all', '*')
    .option('--exclude-inbound-ports <ports>', 'inbound ports that reach the app directly, comma-separated')
    .option('--exclude-outbound-ports <ports>', 'destination ports the app reaches directly, comma-separated')
    .option(
      '--exclude-outbound-cidrs <cidrs>',
      'destination networks the app reaches directly, comma-separated (e.g. 169.254.169.254/32)',
    )
    .option('--ipv6', 'also write the rules with ip6tables')
    .option('--dry-run', 'print the iptables-restore input instead of applying it')
    .option('--remove', 'take the rules out again')
    .addHelpText(
      'after',
      `
Rules (nat table, own chains, replaced whole on every run so a re-run never duplicates):
  PREROUTING -> HEXMESH_INBOUND -> HEXMESH_IN_REDIRECT -> REDIRECT to --inbound-port
  OUTPUT     -> HEXMESH_OUTPUT  -> HEXMESH_REDIRECT    -> REDIRECT to --outbound-port
Never redirected: the proxy's uid (and --proxy-gid), loopback, the inbound port itself,
and the excluded ports and networks. Needs root (NET_ADMIN) and iptables-restore.
The proxy reads each connection's original destination (SO_ORIGINAL_DST) when its
config has proxy.capture (docs/kubernetes.md, "Transparent capture").

Example:
  hexmesh capture --proxy-uid 2102 --exclude-inbound-ports 15021 --dry-run`,
    )
    .action(async (f: CaptureFlags) => {
      try {
        await capture(f);
      } catch (e) {
        if (e instanceof ConfigError) throw e;
        // iptables' own failure (not root, not installed): its message, no stack.
        process.stderr.write(`hexmesh capture: ${(e as Error).message}\n`);
        process.exitCode = EXIT.RUNTIME;
      }
    });
}

async function capture(f: CaptureFlags): Promise<void> {
  const rules = await import('../../proxy/capture/iptables-rules.ts');
  const families: (4 | 6)[] = f.ipv6 ? [4, 6] : [4];
  if (f.remove) {
    for (const fam of families) {
      if (f.dryRun) process.stdout.write(rules.removeScript(rules.currentNat(fam)));
      else rules.removeCapture(fam);
    }
    if (!f.dryRun) process.stdout.write('hexmesh capture: rules removed\n');
    return;
  }
  const o = rules.captureOptions({
    proxyUid: int('proxy-uid', f.proxyUid),
    ...(f.proxyGid !== undefined ? { proxyGid: int('proxy-gid', f.proxyGid) } : {}),
    inboundPort: int('inbound-port', f.inboundPort),
    outboundPort: int('outbound-port', f.outboundPort),
    inboundPorts: f.inboundPorts.trim() === '*' ? '*' : ports('inbound-ports', f.inboundPorts),
    excludeInboundPorts: ports('exclude-inbound-ports', f.excludeInboundPorts),
    excludeOutboundPorts: ports('exclude-outbound-ports', f.excludeOutboundPorts),
    excludeOutboundCidrs: list(f.excludeOutboundCidrs),
  });
  for (const fam of families) {
    if (f.dryRun) {
      // As if nothing were installed: the whole script, jumps included.
      process.stdout.write(`# ${fam === 4 ? 'iptables' : 'ip6tables'}-restore --noflush\n`);
      process.stdout.write(rules.restoreScript(o, fam));
    } else rules.applyCapture(o, fam);
  }
  if (!f.dryRun)
    process.stdout.write(
      `hexmesh capture: inbound TCP -> :${o.inboundPort}, outbound TCP -> :${o.outboundPort} (uid ${o.proxyUid} excluded)\n`,
    );
}
