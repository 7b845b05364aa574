/**
 * Test support: raw TCP clients (bytes in, bytes out) for malformed HTTP/1 and HTTP/2 input,
 * and a minimal HTTP/2 frame builder (literal HPACK, no Huffman) to send what no real client
 * library would.
 */
import net from 'node:net';
import tls from 'node:tls';

export interface RawResult {
  /** Everything the server sent before closing (or before the timeout). */
  data: Buffer;
  /** `data` as latin1 text. */
  text: string;
  /** The server closed the connection, or `until` was satisfied (rather than the timeout firing). */
  closed: boolean;
  /** Milliseconds from connect to close / timeout. */
  elapsed: number;
}

/**
 * Connect to 127.0.0.1:`port`, write `chunks` (strings are latin1) and collect what comes
 * back until the server closes or `timeoutMs` passes (then the client destroys the socket).
 */
export function rawExchange(
  port: number,
  chunks: string | Buffer | (string | Buffer)[],
  opts: {
    timeoutMs?: number;
    endAfterWrite?: boolean;
    /** Stop early (the client closes) once what arrived satisfies this. */
    until?: (data: Buffer) => boolean;
    /** Connect over TLS with these options (an mTLS inbound listener). */
    tls?: tls.ConnectionOptions;
  } = {},
): Promise<RawResult> {
  const list = Array.isArray(chunks) ? chunks : [chunks];
  const t0 = Date.now();
  return new Promise((resolve) => {
    const s = opts.tls
      ? tls.connect({ ...opts.tls, host: '127.0.0.1', port })
      : net.connect(port, '127.0.0.1');
    const parts: Buffer[] = [];
    let closed = false;
    s.on('data', (d: Buffer) => {
      parts.push(d);
      if (opts.until?.(Buffer.concat(parts))) {
        closed = true;
        s.destroy();
      }
    });
    s.on('error', () => {});
    s.on('end', () => {
      closed = true;
    });
    s.on('close', () => {
      clearTimeout(timer);
      const data = Buffer.concat(parts);
      resolve({ data, text: data.toString('latin1'), closed: closed || !timedOut, elapsed: Date.now() - t0 });
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      s.destroy();
    }, opts.timeoutMs ?? 3000);
    s.once(opts.tls ? 'secureConnect' : 'connect', () => {
      for (const c of list) s.write(typeof c === 'string' ? Buffer.from(c, 'latin1') : c);
      if (opts.endAfterWrite) s.end();
    });
  });
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Parse the first HTTP/1 response in `text` (Content-Length bodies; else the rest). */
export function parseResponse(text: string): RawResponse | undefined {
  const m = /^HTTP\/1\.[01] (\d{3})[^\r\n]*\r\n/.exec(text);
  if (!m) return undefined;
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const headers: Record<string, string> = {};
  for (const line of text.slice(m[0].length, end).split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  const rest = text.slice(end + 4);
  const len = headers['content-length'];
  return { status: Number(m[1]), headers, body: len === undefined ? rest : rest.slice(0, Number(len)) };
}

// ---------- HTTP/2 frames ----------

export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
export const H2 = {
  DATA: 0,
  HEADERS: 1,
  PRIORITY: 2,
  RST_STREAM: 3,
  SETTINGS: 4,
  PUSH_PROMISE: 5,
  PING: 6,
  GOAWAY: 7,
  WINDOW_UPDATE: 8,
  CONTINUATION: 9,
  END_STREAM: 0x1,
  END_HEADERS: 0x4,
  ACK: 0x1,
} as const;

/** One frame: 24-bit length, type, flags, 31-bit stream id, payload. */
export function h2Frame(
  type: number,
  flags: number,
  streamId: number,
  payload: Buffer = Buffer.alloc(0),
): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([h, payload]);
}

function hpackInt(value: number, prefixBits: number, firstByte: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([firstByte | value]);
  const out = [firstByte | max];
  let v = value - max;
  while (v >= 128) {
    out.push((v & 127) | 128);
    v >>= 7;
  }
  out.push(v);
  return Buffer.from(out);
}

function hpackString(s: string): Buffer {
  const b = Buffer.from(s, 'latin1');
  return Buffer.concat([hpackInt(b.length, 7, 0), b]);
}

/** HPACK block of literal fields without indexing (no Huffman): any bytes, valid or not. */
export function hpackLiteral(fields: [string, string][]): Buffer {
  return Buffer.concat(fields.flatMap(([n, v]) => [Buffer.from([0]), hpackString(n), hpackString(v)]));
}

/** Client preface + empty SETTINGS, ready for frames. */
export function h2Open(): Buffer {
  return Buffer.concat([H2_PREFACE, h2Frame(H2.SETTINGS, 0, 0)]);
}

/** A complete HEADERS frame (END_HEADERS, END_STREAM) with the given fields. */
export function h2Headers(streamId: number, fields: [string, string][]): Buffer {
  return h2Frame(H2.HEADERS, H2.END_HEADERS | H2.END_STREAM, streamId, hpackLiteral(fields));
}

/** Frames in `data` (after any server preface): type, flags, stream id, payload. */
export function parseFrames(
  data: Buffer,
): { type: number; flags: number; streamId: number; payload: Buffer }[] {
  const out = [];
  let i = 0;
  while (i + 9 <= data.length) {
    const len = data.readUIntBE(i, 3);
    if (i + 9 + len > data.length) break;
    out.push({
      type: data[i + 3],
      flags: data[i + 4],
      streamId: data.readUInt32BE(i + 5) & 0x7fffffff,
      payload: data.subarray(i + 9, i + 9 + len),
    });
    i += 9 + len;
  }
  return out;
}

/** True once `data` holds a frame that settles stream 1 or the connection (for `until`). */
export function h2Settled(data: Buffer): boolean {
  return parseFrames(data).some(
    (f) =>
      f.type === H2.GOAWAY ||
      (f.type === H2.RST_STREAM && f.streamId !== 0) ||
      ((f.type === H2.DATA || f.type === H2.HEADERS) && (f.flags & H2.END_STREAM) !== 0),
  );
}
