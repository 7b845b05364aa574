/**
 * Where a redirected connection was going. The capture rules (iptables-rules.ts) rewrite the
 * destination of a pod's connection to the proxy's listener; the kernel's connection tracking
 * keeps the original one, and `getsockopt(fd, SOL_IP, SO_ORIGINAL_DST)` (IPv6:
 * `SOL_IPV6, IP6T_SO_ORIGINAL_DST`) returns it as a sockaddr — what Envoy's
 * original_dst listener filter and linkerd2-proxy's `orig_dst` read.
 *
 * Node has no binding for it, so libc's getsockopt is called through koffi (a maintained FFI
 * package shipping prebuilt binaries), on the socket's own fd. Loaded on first use, Linux only:
 * anywhere else, or when the FFI cannot load, no connection is taken for a redirected one.
 */
import { createRequire } from 'node:module';
import type net from 'node:net';

export interface OriginalDestination {
  address: string;
  port: number;
  family: 4 | 6;
}

const SOL_IP = 0;
const SOL_IPV6 = 41;
/** linux/netfilter_ipv4.h SO_ORIGINAL_DST; linux/netfilter_ipv6/ip6_tables.h IP6T_SO_ORIGINAL_DST. */
const SO_ORIGINAL_DST = 80;
const SOCKADDR_IN = 16;
const SOCKADDR_IN6 = 28;

type GetSockOpt = (fd: number, level: number, name: number, out: Buffer, len: number[]) => number;

let getsockopt: GetSockOpt | null | undefined;
let loadError: string | undefined;

function load(): GetSockOpt | null {
  if (getsockopt !== undefined) return getsockopt;
  getsockopt = null;
  if (process.platform !== 'linux') {
    loadError = `SO_ORIGINAL_DST is Linux only (this is ${process.platform})`;
    return null;
  }
  try {
    const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
    const libc = koffi.load('libc.so.6');
    getsockopt = libc.func(
      'int getsockopt(int fd, int level, int optname, _Out_ uint8_t *optval, _Inout_ uint32_t *optlen)',
    ) as GetSockOpt;
  } catch (err) {
    loadError = `cannot call getsockopt through koffi: ${(err as Error).message}`;
  }
  return getsockopt;
}

/** Why original destinations cannot be read here, or undefined when they can. */
export function originalDestinationUnavailable(): string | undefined {
  load();
  return loadError;
}

/** The TCP socket under `socket`: itself, or the raw socket a server-side TLSSocket wraps. */
function tcpSocket(socket: net.Socket): net.Socket {
  const parent = (socket as unknown as { _parent?: net.Socket | null })._parent;
  return 'encrypted' in socket && parent ? parent : socket;
}

/** The socket's file descriptor (libuv's TCP handle; absent on a closed socket). */
function fdOf(socket: net.Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** Decode a sockaddr_in / sockaddr_in6 (the port in network order, the address in bytes). */
export function decodeSockaddr(b: Buffer): OriginalDestination | undefined {
  const family = b.readUInt16LE(0); // sa_family is host order: little-endian on x86-64/arm64
  const port = b.readUInt16BE(2);
  if (family === 2 && b.length >= SOCKADDR_IN)
    return { family: 4, port, address: `${b[4]}.${b[5]}.${b[6]}.${b[7]}` };
  if (family === 10 && b.length >= SOCKADDR_IN6) {
    const groups: string[] = [];
    for (let i = 0; i < 8; i++) groups.push(b.readUInt16BE(8 + 2 * i).toString(16));
    return { family: 6, port, address: compressV6(groups) };
  }
  return undefined;
}

/** RFC 5952 text of eight hex groups (longest run of zero groups, two or more, as `::`). */
function compressV6(g: string[]): string {
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === '0') j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  if (best < 0) return g.join(':');
  const mapped = best === 0 && bestLen === 5 && g[5] === 'ffff';
  if (mapped) {
    const a = parseInt(g[6], 16);
    const b = parseInt(g[7], 16);
    return `::ffff:${a >> 8}.${a & 255}.${b >> 8}.${b & 255}`;
  }
  return `${g.slice(0, best).join(':')}::${g.slice(best + bestLen).join(':')}`;
}

/**
 * The destination `socket` had before a capture rule redirected it, or undefined when it was
 * not redirected (no conntrack entry, or the original destination is the listener itself: the
 * app dialled the proxy directly).
 */
export function originalDestination(wrapped: net.Socket): OriginalDestination | undefined {
  const socket = tcpSocket(wrapped);
  const fn = load();
  const fd = fdOf(socket);
  if (!fn || fd === undefined) return undefined;
  const v6 = socket.localAddress !== undefined && socket.localAddress.includes(':');
  const v4mapped = v6 && socket.localAddress!.startsWith('::ffff:');
  const size = v6 && !v4mapped ? SOCKADDR_IN6 : SOCKADDR_IN;
  const out = Buffer.alloc(size);
  const len = [size];
  // A dual-stack socket carrying IPv4 answers at SOL_IP, like a plain IPv4 one.
  if (fn(fd, size === SOCKADDR_IN6 ? SOL_IPV6 : SOL_IP, SO_ORIGINAL_DST, out, len) !== 0) return undefined;
  const dst = decodeSockaddr(out);
  if (!dst) return undefined;
  const local = (socket.localAddress ?? '').replace(/^::ffff:/, '');
  if (dst.port === socket.localPort && dst.address === local) return undefined;
  return dst;
}
