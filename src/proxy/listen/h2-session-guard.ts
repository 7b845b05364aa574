/**
 * Per-connection limits of the HTTP/2 downstream listener: what a single client session may
 * cost the proxy, whatever frames it sends.
 *
 * - Streams in the works: nghttp2 enforces the advertised SETTINGS_MAX_CONCURRENT_STREAMS on
 *   open streams, but a stream the client resets is closed for nghttp2 at once while the proxy
 *   may still be winding down its upstream call. A stream that arrives while `maxStreams`
 *   handlers of its session are still busy is refused (RST_STREAM REFUSED_STREAM) before any
 *   layer sees it (as Go's http2 server bounds handler goroutines).
 * - Rapid reset (CVE-2023-44487): streams the client resets, and streams refused as above, are
 *   counted per session in a fixed window; past `resetBudget` in `resetWindowMs` the session
 *   gets GOAWAY(ENHANCE_YOUR_CALM) and is closed.
 * - Liveness and idle: nghttp2 answers a protocol error with GOAWAY but Node leaves the socket
 *   open until the idle timeout (5 min). A session with nothing in flight is pinged after a quiet
 *   spell (backing off to one ping a minute); a ping not acknowledged within 5 s means the
 *   session is over (or the peer is gone) and it is destroyed. A session with no stream for
 *   `idleTimeout` is closed (keep-alive idle, as HTTP/1).
 */
import http2 from 'node:http2';

const { NGHTTP2_ENHANCE_YOUR_CALM } = http2.constants;

/** How often sessions are checked (ping probe, idle close); bounds the close delay after a GOAWAY. */
export const SWEEP_MS = 1000;
/** First ping after this much quiet; the gap doubles up to {@link MAX_PING_GAP_MS}. */
const FIRST_PING_MS = 1000;
const MAX_PING_GAP_MS = 60_000;
/** A ping not acknowledged within this means the session is over or the peer is gone. */
const PING_TIMEOUT_MS = 5000;

export interface SessionLimits {
  /** Streams of one session the proxy works on at once (also advertised to the client). */
  maxStreams: number;
  /** Client resets (and refused streams) tolerated per session per window. */
  resetBudget: number;
  resetWindowMs: number;
  /** Keep-alive: a session without a stream for this long is closed. */
  idleTimeout: number;
}

/** The limits and liveness state of one client session. */
export class SessionGuard {
  /** Streams handed to the service and not yet finished (response written or abandoned). */
  busy = 0;
  /** Streams opened by the client and not closed yet. */
  open = 0;
  #resets = 0;
  #windowStart = 0;
  /** Last stream opened or closed (ms, Date.now()). */
  #lastActive = Date.now();
  #pingGap = FIRST_PING_MS;
  #nextPing = 0;
  /** When the unanswered ping was sent (0: none outstanding). */
  #pingSent = 0;
  #closing = false;

  constructor(
    readonly session: http2.ServerHttp2Session,
    readonly limits: SessionLimits,
  ) {}

  /** A stream arrived: true if it may go to the service, false if it must be refused. */
  admit(): boolean {
    this.#touch();
    if (this.busy >= this.limits.maxStreams) {
      this.#abused();
      return false;
    }
    this.busy++;
    return true;
  }

  /** The client reset one of its streams (or sent one nghttp2 reset as malformed). */
  clientReset(): void {
    this.#abused();
  }

  streamOpened(): void {
    this.open++;
    this.#touch();
  }

  streamClosed(): void {
    this.open--;
    this.#touch();
  }

  #touch(): void {
    this.#lastActive = Date.now();
    this.#pingGap = FIRST_PING_MS;
    this.#nextPing = 0;
  }

  #abused(): void {
    const now = Date.now();
    if (now - this.#windowStart > this.limits.resetWindowMs) {
      this.#windowStart = now;
      this.#resets = 0;
    }
    if (++this.#resets > this.limits.resetBudget) this.calm();
  }

  /** GOAWAY(ENHANCE_YOUR_CALM) and close the connection now; open streams are reset. */
  calm(): void {
    if (this.#closing || this.session.destroyed) return;
    this.#closing = true;
    const s = this.session;
    // GOAWAY first, and close once it is on its way: the session writes on an immediate, so a
    // destroy() now (or on an immediate) would drop it.
    s.goaway(NGHTTP2_ENHANCE_YOUR_CALM);
    setTimeout(() => s.destroy(), 10);
  }

  /** Periodic check (every {@link SWEEP_MS}): idle close, ping probe. */
  sweep(now: number): void {
    const s = this.session;
    if (s.destroyed) return;
    if (this.#pingSent !== 0) {
      // GOAWAY sent or received (nghttp2 answers nothing more), or the peer is gone.
      if (now - this.#pingSent >= PING_TIMEOUT_MS) s.destroy();
      return;
    }
    if (this.open > 0 || this.busy > 0) return;
    const quiet = now - this.#lastActive;
    if (quiet >= this.limits.idleTimeout) {
      // Keep-alive idle: GOAWAY, then close (no stream is open, so at once).
      s.close();
      return;
    }
    if (quiet < FIRST_PING_MS || now < this.#nextPing) return;
    this.#pingSent = now;
    this.#nextPing = now + this.#pingGap;
    this.#pingGap = Math.min(this.#pingGap * 2, MAX_PING_GAP_MS);
    try {
      s.ping((err) => {
        if (!err) this.#pingSent = 0;
      });
    } catch {
      // Closing or too many pings in flight: the next sweep destroys it.
    }
  }
}
