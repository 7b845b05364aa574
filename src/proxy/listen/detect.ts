/**
 * Protocol detection on an accepted socket: HTTP/2 prior-knowledge preface, an HTTP/1
 * request line, the hexmesh tunnel header (opaque TCP between sidecars), or else opaque
 * TCP. A client that sends nothing within the timeout is treated as opaque TCP, so
 * server-first protocols (MySQL, SMTP) work after at most `timeoutMs` (ours: 1 s).
 */
import type { Socket } from 'node:net';

export type Detected = 'http1' | 'http2' | 'tunnel' | 'tcp';

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
/** Magic that opens a sidecar-to-sidecar opaque tunnel: `HXMT` then a 2-byte target port. */
export const TUNNEL_MAGIC = Buffer.from('HXMT');
export const TUNNEL_HEADER_LENGTH = TUNNEL_MAGIC.length + 2;
/** Longest method token we accept as HTTP/1 (`OPTIONS`, `CONNECT`, extension methods). */
const MAX_METHOD = 24;
/**
 * Empty lines skipped before an HTTP/1 request line (RFC 9112 §2.2: a server SHOULD ignore
 * at least one; Node's parser ignores any number). More than this is not HTTP to us.
 */
const MAX_LEADING_EMPTY = 32;

function isTokenChar(c: number): boolean {
  // RFC 9110 tchar, restricted to what methods use in practice: A-Z, a-z, 0-9, '-', '_'.
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 || c === 95;
}

/** Decide from the bytes seen so far; `undefined` means "need more bytes". */
export function classify(buf: Buffer): Detected | undefined {
  if (buf.length === 0) return undefined;
  // HTTP/2 preface.
  const h2n = Math.min(buf.length, H2_PREFACE.length);
  if (buf.subarray(0, h2n).equals(H2_PREFACE.subarray(0, h2n))) {
    return buf.length >= H2_PREFACE.length ? 'http2' : undefined;
  }
  const tn = Math.min(buf.length, TUNNEL_HEADER_LENGTH);
  if (buf.subarray(0, Math.min(tn, 4)).equals(TUNNEL_MAGIC.subarray(0, Math.min(tn, 4)))) {
    return buf.length >= TUNNEL_HEADER_LENGTH ? 'tunnel' : undefined;
  }
  // HTTP/1: [CRLF...] METHOD SP ... A request after empty lines is still HTTP and must take
  // the HTTP path (taken for opaque bytes, it would skip every HTTP layer).
  let start = 0;
  while (start < buf.length && (buf[start] === 13 || buf[start] === 10)) {
    if (++start > MAX_LEADING_EMPTY) return 'tcp';
  }
  for (let i = start; i < buf.length && i - start <= MAX_METHOD; i++) {
    const c = buf[i];
    if (c === 32) return i > start ? 'http1' : 'tcp';
    if (!isTokenChar(c)) return 'tcp';
  }
  return buf.length - start > MAX_METHOD ? 'tcp' : undefined;
}

export interface Detection {
  kind: Detected;
  /** The bytes read while detecting; the handler must replay them (see handOver in listener.ts). */
  head: Buffer;
}

/**
 * Read from the socket until the protocol is known. The socket is left paused and the
 * bytes read are returned, because how they are put back depends on the next handler:
 * Node's HTTP/1 parser reads the socket handle directly and ignores `unshift`ed data.
 */
export function detect(socket: Socket, timeoutMs: number): Promise<Detection> {
  return new Promise((resolve) => {
    let buf: Buffer = Buffer.alloc(0);
    const done = (kind: Detected) => {
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('end', onEnd);
      socket.removeListener('close', onEnd);
      socket.pause();
      resolve({ kind, head: buf });
    };
    const onData = (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      const kind = classify(buf);
      if (kind) done(kind);
    };
    const onEnd = () => done(classify(buf) ?? 'tcp');
    const timer = setTimeout(() => done(classify(buf) ?? 'tcp'), timeoutMs);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
  });
}

/**
 * A TLS handshake record (ClientHello) opens the bytes: content type 22, version 3.x. Such
 * a connection classifies as opaque `tcp`; a listener with a TLS handler (mTLS) takes it.
 */
export function looksLikeTls(head: Buffer): boolean {
  return head.length >= 3 && head[0] === 0x16 && head[1] === 0x03 && head[2] <= 0x04;
}

export function tunnelHeader(port: number): Buffer {
  const b = Buffer.alloc(TUNNEL_HEADER_LENGTH);
  TUNNEL_MAGIC.copy(b, 0);
  b.writeUInt16BE(port, TUNNEL_MAGIC.length);
  return b;
}
