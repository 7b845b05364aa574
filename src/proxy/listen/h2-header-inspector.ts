/**
 * Sees the request header fields an HTTP/2 client sends before nghttp2 does.
 *
 * nghttp2, as Node runs it, silently drops a field whose name is not a lower-case token (a
 * space, a colon) or whose value carries NUL, CR, LF or leading/trailing whitespace, and
 * serves the rest of the request. A proxy must refuse such a request instead (RFC 9113
 * §8.2.1: malformed), as it refuses the same bytes over HTTP/1. Node offers no hook for it,
 * so the bytes from the client pass through an {@link InspectedSocket} on their way to the
 * HTTP/2 session: it follows the frames, decodes each request's header block with its own
 * HPACK decoder, in step with nghttp2's, and records a problem per stream id; the listener
 * asks for it when the stream arrives and answers 400.
 *
 * Fail-open: on anything it cannot follow (HPACK it cannot decode, which nghttp2 then refuses
 * itself; an oversized block) it stops inspecting that connection rather than guess.
 */
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { HpackDecoder } from './hpack-decoder.ts';
import { PEER_IDENTITY } from './request-context.ts';

const PREFACE_LENGTH = 24;
const HEADERS = 1;
const RST_STREAM = 3;
const CONTINUATION = 9;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY = 0x20;
/** A header block larger than this (compressed) is not inspected (nghttp2's limits apply). */
const MAX_BLOCK = 256 * 1024;
/** Problems remembered per connection (streams nghttp2 refused never collect theirs). */
const MAX_PENDING = 256;

/** RFC 9110 token, lower case (HTTP/2 field names are lower case). */
const NAME = /^[a-z0-9!#$%&'*+\-.^_`|~]+$/;

/** RFC 9110 field-value: no control character but HTAB; no leading or trailing whitespace. */
function badValue(v: string): boolean {
  const n = v.length;
  if (n === 0) return false;
  const first = v.charCodeAt(0);
  const last = v.charCodeAt(n - 1);
  if (first === 32 || first === 9 || last === 32 || last === 9) return true;
  for (let i = 0; i < n; i++) {
    const c = v.charCodeAt(i);
    if ((c < 32 && c !== 9) || c === 127) return true;
  }
  return false;
}

/** Why a request field is not valid HTTP, or undefined. Pseudo-headers are nghttp2's to check. */
export function fieldProblem(name: string, value: string): string | undefined {
  if (name.charCodeAt(0) === 58 /* ':' */) return undefined;
  if (!NAME.test(name)) return `invalid header name ${JSON.stringify(name.slice(0, 64))}`;
  if (badValue(value))
    return `invalid value for header ${name} (control character or leading/trailing whitespace)`;
  return undefined;
}

/**
 * Fields a trailer section may not carry (RFC 9113 §8.1, §8.2.2): connection-specific ones,
 * and those that only make sense before the content. nghttp2 resets a stream for some of them
 * itself; the rest it would pass.
 */
const NOT_IN_TRAILERS = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'host',
  'content-length',
  'content-type',
  'content-encoding',
  'authorization',
  'cookie',
]);

/**
 * Why a request trailer field is refused, or undefined. Trailers are held to the rules of
 * header fields (as Envoy validates them) and more: no pseudo-header, nothing
 * connection-specific or that routing, authorization or framing read from the header section.
 */
export function trailerProblem(name: string, value: string): string | undefined {
  if (name.charCodeAt(0) === 58 /* ':' */)
    return `pseudo-header ${JSON.stringify(name.slice(0, 64))} in trailers`;
  const p = fieldProblem(name, value);
  if (p !== undefined) return `${p} in trailers`;
  if (NOT_IN_TRAILERS.has(name)) return `header ${name} is not allowed in trailers`;
  return undefined;
}

function requestProblem(fields: [string, string][]): string | undefined {
  for (const [name, value] of fields) {
    const p = fieldProblem(name, value);
    if (p !== undefined) return p;
  }
  return undefined;
}

/** RST_STREAM frames a client may send per window before its bytes stop (rapid reset). */
export interface ResetLimit {
  budget: number;
  windowMs: number;
}

/**
 * Follows the client's frames on one connection; `problem(id)` tells what was wrong with a
 * request. It also counts the client's RST_STREAM frames: past the budget, `feed` lets no
 * more bytes through (not even the rest of the chunk in hand), so a rapid-reset flood costs
 * the session at most the budget's streams however much the client managed to send.
 */
export class HeaderInspector {
  readonly #limit: ResetLimit | undefined;
  readonly #maxTrailerBytes: number;
  #resets = 0;
  #windowStart = 0;
  /** The reset budget is spent: nothing more passes. */
  flooded = false;
  /**
   * Called when a stream's trailers are malformed, before nghttp2 reads them; returns true if
   * the stream's request was stopped. Otherwise the problem is kept for {@link problem}.
   */
  onBadTrailers: ((streamId: number, problem: string) => boolean) | undefined;
  readonly #decoder = new HpackDecoder();
  readonly #problems = new Map<number, string>();
  #preface = PREFACE_LENGTH;
  /** A frame header not complete yet. */
  #head: Buffer | null = null;
  /** Payload bytes of the current frame still to skip (frames we do not read). */
  #skip = 0;
  /** The current HEADERS/CONTINUATION frame: payload still to collect into `#parts`. */
  #want = 0;
  #parts: Buffer[] = [];
  #blockBytes = 0;
  #blockStream = 0;
  #frameType = 0;
  #frameFlags = 0;
  #lastStream = 0;
  #off = false;

  /** `maxTrailerBytes`: the most a trailer section may hold (HPACK sizes, as SETTINGS_MAX_HEADER_LIST_SIZE). */
  constructor(limit?: ResetLimit, maxTrailerBytes = Infinity) {
    this.#limit = limit;
    this.#maxTrailerBytes = maxTrailerBytes;
  }

  /** The problem recorded for this stream's request headers (once). */
  problem(streamId: number): string | undefined {
    const p = this.#problems.get(streamId);
    if (p !== undefined) this.#problems.delete(streamId);
    return p;
  }

  /** Inspect the next bytes from the client; returns how many of them may go to the session. */
  feed(chunk: Buffer): number {
    if (this.flooded) return 0;
    if (this.#off) return chunk.length;
    try {
      return this.#feed(chunk);
    } catch {
      this.#stop();
      return chunk.length;
    }
  }

  #stop(): void {
    this.#off = true;
    this.#parts = [];
    this.#head = null;
  }

  #feed(chunk: Buffer): number {
    let i = 0;
    const n = chunk.length;
    if (this.#preface > 0) {
      const k = Math.min(this.#preface, n);
      this.#preface -= k;
      i = k;
    }
    while (i < n && !this.#off) {
      if (this.#skip > 0) {
        const k = Math.min(this.#skip, n - i);
        this.#skip -= k;
        i += k;
        continue;
      }
      if (this.#want > 0) {
        const k = Math.min(this.#want, n - i);
        this.#parts.push(chunk.subarray(i, i + k));
        this.#want -= k;
        i += k;
        if (this.#want === 0) this.#frameDone();
        continue;
      }
      // A frame header: 9 bytes, perhaps split across chunks.
      const frameStart = this.#head === null ? i : 0;
      let h: Buffer;
      if (this.#head !== null || n - i < 9) {
        const have = this.#head ?? Buffer.alloc(0);
        const k = Math.min(9 - have.length, n - i);
        h = Buffer.concat([have, chunk.subarray(i, i + k)]);
        i += k;
        if (h.length < 9) {
          this.#head = h;
          continue;
        }
        this.#head = null;
      } else {
        h = chunk.subarray(i, i + 9);
        i += 9;
      }
      if (h[3] === RST_STREAM && this.#overBudget()) {
        this.flooded = true;
        return frameStart;
      }
      this.#frame(h.readUIntBE(0, 3), h[3], h[4], h.readUInt32BE(5) & 0x7fffffff);
    }
    return n;
  }

  #overBudget(): boolean {
    const limit = this.#limit;
    if (!limit) return false;
    const now = Date.now();
    if (now - this.#windowStart > limit.windowMs) {
      this.#windowStart = now;
      this.#resets = 0;
    }
    return ++this.#resets > limit.budget;
  }

  #frame(length: number, type: number, flags: number, stream: number): void {
    const inBlock = this.#blockStream !== 0;
    if (type === HEADERS && !inBlock) {
      this.#blockStream = stream;
      this.#parts = [];
      this.#blockBytes = 0;
    } else if (!(type === CONTINUATION && inBlock && stream === this.#blockStream)) {
      // Anything else inside a header block is a connection error nghttp2 will answer.
      if (inBlock) return this.#stop();
      this.#skip = length;
      return;
    }
    this.#blockBytes += length;
    if (this.#blockBytes > MAX_BLOCK) return this.#stop();
    this.#frameType = type;
    this.#frameFlags = flags;
    this.#want = length;
    if (length === 0) this.#frameDone();
  }

  /** A HEADERS or CONTINUATION payload is complete. */
  #frameDone(): void {
    if (this.#frameType === HEADERS) {
      // Strip padding and priority from the HEADERS payload (RFC 9113 §6.2).
      let payload = Buffer.concat(this.#parts);
      let start = 0;
      let end = payload.length;
      if (this.#frameFlags & PADDED) {
        if (payload.length < 1) return this.#stop();
        end -= payload[0];
        start = 1;
      }
      if (this.#frameFlags & PRIORITY) start += 5;
      if (start > end) return this.#stop();
      payload = payload.subarray(start, end);
      this.#parts = [payload];
    }
    if ((this.#frameFlags & END_HEADERS) === 0) return;
    const block = this.#parts.length === 1 ? this.#parts[0] : Buffer.concat(this.#parts);
    const stream = this.#blockStream;
    this.#parts = [];
    this.#blockStream = 0;
    const fields = this.#decoder.decode(block);
    if (stream % 2 === 0) return;
    // A new stream's first block is its request; a later one on it, its trailers.
    const trailers = stream <= this.#lastStream;
    if (!trailers) this.#lastStream = stream;
    const p = trailers ? this.#trailersProblem(fields) : requestProblem(fields);
    if (p === undefined) return;
    if (trailers && this.onBadTrailers?.(stream, p) === true) return;
    if (this.#problems.size >= MAX_PENDING) this.#problems.clear();
    this.#problems.set(stream, p);
  }

  #trailersProblem(fields: [string, string][]): string | undefined {
    let size = 0;
    for (const [name, value] of fields) {
      const p = trailerProblem(name, value);
      if (p !== undefined) return p;
      // nghttp2 holds the header section to SETTINGS_MAX_HEADER_LIST_SIZE, not trailers: we do.
      size += name.length + value.length + 32;
      if (size > this.#maxTrailerBytes) return `trailers larger than ${this.#maxTrailerBytes} bytes`;
    }
    return undefined;
  }
}

/**
 * The client's socket as the HTTP/2 session sees it: bytes from the client pass through a
 * {@link HeaderInspector} first; writes go straight to the socket. Carries what the request
 * context reads from a session's socket (addresses, the mTLS peer identity).
 */
export class InspectedSocket extends Duplex {
  readonly inspector: HeaderInspector;
  /** Called once when the client's resets exceed the budget (its bytes no longer pass). */
  onFlood: (() => void) | undefined;
  /** Requests in flight whose body is still coming, by stream id: stop one on bad trailers. */
  readonly requests = new Map<number, (problem: string) => void>();
  readonly #socket: Socket;
  readonly [PEER_IDENTITY]?: string;

  /** `head`: bytes already read from `socket` (protocol detection), delivered first. */
  constructor(socket: Socket, head: Buffer, resetLimit?: ResetLimit, maxTrailerBytes?: number) {
    super({ allowHalfOpen: false });
    this.inspector = new HeaderInspector(resetLimit, maxTrailerBytes);
    this.inspector.onBadTrailers = (id, problem) => {
      const stop = this.requests.get(id);
      stop?.(problem);
      return stop !== undefined;
    };
    this.#socket = socket;
    const id = (socket as { [PEER_IDENTITY]?: string })[PEER_IDENTITY];
    if (id !== undefined) this[PEER_IDENTITY] = id;
    this.on('error', ignore);
    if (head.length) this.#deliver(head);
    socket.on('data', (d: Buffer) => this.#deliver(d));
    socket.once('end', () => this.push(null));
    socket.once('close', () => this.destroy());
  }

  #deliver(d: Buffer): void {
    if (this.inspector.flooded) return;
    const pass = this.inspector.feed(d);
    if (pass < d.length) {
      if (pass > 0) this.push(d.subarray(0, pass));
      this.#socket.pause();
      this.onFlood?.();
      return;
    }
    if (!this.push(d)) this.#socket.pause();
  }

  override _read(): void {
    if (!this.inspector.flooded) this.#socket.resume();
  }

  get remoteAddress(): string | undefined {
    return this.#socket.remoteAddress;
  }
  get remotePort(): number | undefined {
    return this.#socket.remotePort;
  }
  get remoteFamily(): string | undefined {
    return this.#socket.remoteFamily;
  }
  get localAddress(): string | undefined {
    return this.#socket.localAddress;
  }
  get localPort(): number | undefined {
    return this.#socket.localPort;
  }
  get encrypted(): boolean {
    return (this.#socket as { encrypted?: boolean }).encrypted === true;
  }
  get alpnProtocol(): string | false | undefined {
    return (this.#socket as { alpnProtocol?: string | false }).alpnProtocol;
  }

  setNoDelay(noDelay?: boolean): this {
    this.#socket.setNoDelay(noDelay);
    return this;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.#socket.write(chunk, cb);
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    this.#socket.cork();
    for (let i = 0; i < chunks.length - 1; i++) this.#socket.write(chunks[i].chunk);
    this.#socket.write(chunks[chunks.length - 1].chunk, cb);
    this.#socket.uncork();
  }

  override _final(cb: () => void): void {
    this.#socket.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    // What the session wrote last (its GOAWAY) may still be on its way: let it go out, but do
    // not wait for a peer that does not read.
    const socket = this.#socket;
    if (!socket.destroyed && socket.writableLength > 0) {
      socket.end();
      setTimeout(() => socket.destroy(), 1000).unref();
    } else socket.destroy();
    cb(err);
  }
}

function ignore(): void {}
