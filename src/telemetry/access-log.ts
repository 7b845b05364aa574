/**
 * JSON-lines access log, off by default: one line per request once its response
 * body ended (or failed). Lines are buffered and written asynchronously in batches
 * (one write per event-loop turn at most), so a slow disk or a piped stdout never
 * blocks the data path; if the sink cannot keep up, lines past `maxBufferedBytes`
 * are dropped and counted rather than buffered without bound.
 *
 * What is never logged: header values (authorization, cookies, tokens: no header
 * is logged at all), query strings (they carry API keys and tokens as often as
 * headers do), userinfo in an authority, bodies.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import type { Direction } from '../proxy/core/dispatch.ts';

/** One access log line. Field names are stable: dashboards and log pipelines key on them. */
export interface AccessLogEntry {
  /** ISO-8601 wall-clock time at completion. */
  time: string;
  direction: Direction;
  src_service: string;
  dst_service: string;
  /** Peer SPIFFE identity when mTLS authenticated it, else null. */
  peer_identity: string | null;
  route: string;
  method: string;
  /** Host or :authority, userinfo stripped. */
  authority: string;
  /** Path only; the query string is never logged. */
  path: string;
  protocol: string;
  status: number;
  /** gRPC status from headers or trailers, null when not gRPC or unknown. */
  grpc_status: string | null;
  duration_ms: number;
  /** From content-length when the sender declared it, else null (bodies are streamed, not counted). */
  request_bytes: number | null;
  response_bytes: number | null;
  /** `host:port` of the endpoint of the last try, null if none was chosen. */
  upstream: string | null;
  retries: number;
  /** The `x-hexmesh-error` code when the proxy made the response up, else null. */
  error: string | null;
  /** How the response body finished: `end`, `error` (stream failed) or `aborted` (closed early). */
  outcome: 'end' | 'error' | 'aborted';
  tls: boolean;
  /** Trace id from a valid W3C `traceparent`, else null. */
  trace_id: string | null;
}

export interface AccessLogOptions {
  /** `stdout`, a file path (appended to), or any Writable. */
  destination: 'stdout' | string | Writable;
  /** Lines waiting for the sink beyond this many bytes are dropped (default 1 MiB). */
  maxBufferedBytes?: number;
}

/** Buffered, asynchronous JSON-lines writer. */
export class AccessLog {
  private readonly sink: Writable;
  private readonly ownsSink: boolean;
  private readonly maxBuffered: number;
  private pending: string[] = [];
  private pendingBytes = 0;
  private scheduled = false;
  private blocked = false;
  private closing: Promise<void> | undefined;
  private droppedLines = 0;
  /** Built once: the batch flush runs per event-loop turn, not a closure per line. */
  private readonly flushBound = (): void => this.flushNow();

  constructor(opts: AccessLogOptions) {
    this.maxBuffered = opts.maxBufferedBytes ?? 1024 * 1024;
    if (opts.destination === 'stdout') {
      this.sink = process.stdout;
      this.ownsSink = false;
    } else if (typeof opts.destination === 'string') {
      this.sink = createWriteStream(opts.destination, { flags: 'a' });
      this.ownsSink = true;
    } else {
      this.sink = opts.destination;
      this.ownsSink = false;
    }
    // An error on the sink must not take the proxy down; logging stops, requests go on.
    this.sink.on('error', this.onSinkError);
  }

  /** Lines dropped because the sink could not keep up, or written after close. */
  get dropped(): number {
    return this.droppedLines;
  }

  /** Queue one entry; it is written on a later turn of the event loop. */
  write(entry: AccessLogEntry): void {
    if (this.closing !== undefined || this.sink.destroyed) {
      this.droppedLines++;
      return;
    }
    const line = JSON.stringify(entry) + '\n';
    if (this.pendingBytes + line.length > this.maxBuffered) {
      this.droppedLines++;
      return;
    }
    this.pending.push(line);
    this.pendingBytes += line.length;
    if (!this.scheduled && !this.blocked) {
      this.scheduled = true;
      setImmediate(this.flushBound);
    }
  }

  /** Write what is queued and wait until the sink took it. */
  async flush(): Promise<void> {
    this.flushNow();
    try {
      while (this.blocked && !this.sink.destroyed) await once(this.sink, 'drain');
    } catch {
      // The sink failed; onSinkError counted what was lost.
    }
  }

  /** Flush and, for a file this log opened, close it. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.flush();
      if (this.ownsSink && !this.sink.destroyed) {
        const done = once(this.sink, 'close');
        (this.sink as WriteStream).end();
        await done;
      }
      this.sink.off('error', this.onSinkError);
    })();
    return this.closing;
  }

  private flushNow(): void {
    this.scheduled = false;
    if (this.blocked || this.pending.length === 0 || this.sink.destroyed) return;
    const chunk = this.pending.length === 1 ? this.pending[0] : this.pending.join('');
    this.pending = [];
    this.pendingBytes = 0;
    if (!this.sink.write(chunk)) {
      this.blocked = true;
      this.sink.once('drain', this.onDrain);
    }
  }

  private readonly onDrain = (): void => {
    this.blocked = false;
    this.flushNow();
  };

  private readonly onSinkError = (): void => {
    this.droppedLines += this.pending.length;
    this.pending = [];
    this.pendingBytes = 0;
  };
}
