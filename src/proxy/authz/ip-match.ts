/**
 * IP blocks (CIDR) for `ipBlocks` / `source.ip`, on node's BlockList: IPv4 and IPv6,
 * with IPv4-mapped IPv6 peers (`::ffff:10.0.0.1`, what a dual-stack socket reports)
 * checked as IPv4.
 */
import { BlockList, isIP } from 'node:net';

/** Build a matcher for a list of addresses / CIDR blocks (validated by the schema). */
export function compileIpBlocks(
  blocks: readonly string[] | undefined,
): ((ip: string) => boolean) | undefined {
  if (blocks === undefined) return undefined;
  const list = new BlockList();
  for (const b of blocks) {
    const [ip, bits] = b.split('/');
    const family = isIP(ip) === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(ip, family);
    else list.addSubnet(ip, Number(bits), family);
  }
  return (ip) => {
    const v4 = ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
    const family = isIP(v4);
    if (family === 0) return false;
    return list.check(v4, family === 6 ? 'ipv6' : 'ipv4');
  };
}
