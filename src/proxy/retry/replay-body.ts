/**
 * A request body that can be sent again, as Linkerd's ReplayBody: bytes are handed to the
 * current try as they arrive (a tee: the first try never waits for the whole body) and kept,
 * up to a limit, so that a later try can get a fresh stream of the kept bytes plus the rest.
 *
 * Reading is pull-driven: the source is read only when the current try's stream is read, so
 * back-pressure from the upstream reaches the downstream, and "no byte read yet" really means
 * the try never started sending.
 */
import { Readable } from 'node:stream';
import { takeWhole } from '../core/whole-body.ts';
import { MAX_REPLAY_BYTES } from './resilience-options.ts';

const kOwner = Symbol('hexmesh.replayBody');
type OwnedSource = Readable & { [kOwner]?: ReplayBody };

// Source listeners are shared functions that find their ReplayBody through the source (Node
// calls them with `this` = the emitter), so a request allocates no listener closures.
function onSourceData(this: OwnedSource, chunk: Buffer | string): void {
  this[kOwner]?.onData(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
}
function onSourceEnd(this: OwnedSource): void {
  this[kOwner]?.onEnd();
}
function onSourceError(this: OwnedSource, err: Error): void {
  this[kOwner]?.onError(err);
}

function ignoreError(): void {}

/** The stream one try reads; it pulls from its ReplayBody while it is the current one. */
class TryBody extends Readable {
  owner: ReplayBody | null;
  constructor(owner: ReplayBody) {
    super();
    this.owner = owner;
    // The source may fail (client reset) before the try's transport listens, e.g. while it
    // connects: no listener would crash the process. The transport sees `destroyed`/`errored`.
    this.on('error', ignoreError);
  }
  override _read(): void {
    this.owner?.pull(this);
  }
  /** The whole body at once when all of it is here and nothing was read (core/whole-body.ts). */
  takeWhole(): Buffer | null | undefined {
    if (this.readableFlowing !== null || this.destroyed || this.readableLength > 0) return undefined;
    return this.owner?.takeWhole(this);
  }
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.owner?.detach(this);
    this.owner = null;
    cb(err);
  }
}

export class ReplayBody {
  /** Bytes read from the source so far. */
  bytesRead = 0;
  /** The source ended: every byte has been read. */
  ended = false;
  /** More than `limit` bytes came: kept bytes were dropped, only the current try has the body. */
  overflowed = false;
  error: Error | null = null;
  private readonly source: OwnedSource;
  private readonly limit: number;
  private kept: Buffer[] = [];
  private keptBytes = 0;
  private current: TryBody | null = null;
  private attached = false;

  /** @param limit bytes kept for replay; past it the body can no longer be replayed. */
  constructor(source: Readable, limit: number = MAX_REPLAY_BYTES) {
    this.source = source;
    this.limit = limit;
    this.source[kOwner] = this;
  }

  /**
   * True if a fresh stream from {@link stream} would carry the whole body: nothing was read
   * yet, or all of it was read and kept. (A body still streaming is not replayable, as the
   * retry policy wants: we cannot know yet whether it fits the limit.)
   */
  get replayable(): boolean {
    return this.error === null && (this.bytesRead === 0 || (this.ended && !this.overflowed));
  }

  /**
   * A fresh stream for the next try: the kept bytes, then the rest as it comes. The previous
   * try's stream is cut off (destroyed) first.
   */
  stream(): Readable {
    const prev = this.current;
    if (prev) {
      this.detach(prev);
      prev.owner = null;
      prev.destroy();
    }
    const s = new TryBody(this);
    for (const c of this.kept) s.push(c);
    if (this.error) s.destroy(this.error);
    else if (this.ended) {
      s.owner = null;
      s.push(null);
    } else this.current = s;
    return s;
  }

  /**
   * @internal The current try takes the body whole: the source arrived whole and was not read
   * yet (a request whose body came in the same read as its head). It is kept for replay as if
   * read, and the try's stream ends.
   */
  takeWhole(s: TryBody): Buffer | null | undefined {
    if (s !== this.current || this.attached || this.bytesRead > 0) return undefined;
    const whole = takeWhole(this.source);
    if (whole === undefined) return undefined;
    const n = whole === null ? 0 : whole.length;
    this.bytesRead = n;
    if (n > this.limit) this.overflowed = true;
    else if (whole !== null) {
      this.kept.push(whole);
      this.keptBytes = n;
    }
    this.ended = true;
    this.current = null;
    s.owner = null;
    s.push(null);
    s.resume(); // ends it (no data), so its 'end' listeners run as for a read body
    return whole;
  }

  /** @internal the current try's stream wants data. */
  pull(s: TryBody): void {
    if (s !== this.current) return;
    if (!this.attached) {
      this.attached = true;
      const src = this.source;
      if (src.readableEnded) {
        this.onEnd();
        return;
      }
      src.on('data', onSourceData);
      src.on('end', onSourceEnd);
      src.on('error', onSourceError);
    }
    this.source.resume();
  }

  /** @internal a try's stream went away (destroyed, or replaced). */
  detach(s: TryBody): void {
    if (s !== this.current) return;
    this.current = null;
    // Nobody reads now: stop the source so no byte is read that no try will see.
    if (this.attached && !this.ended) this.source.pause();
  }

  /** @internal */
  onData(chunk: Buffer): void {
    this.bytesRead += chunk.length;
    if (!this.overflowed) {
      if (this.keptBytes + chunk.length > this.limit) {
        this.overflowed = true;
        this.kept = [];
        this.keptBytes = 0;
      } else {
        this.kept.push(chunk);
        this.keptBytes += chunk.length;
      }
    }
    const cur = this.current;
    if (cur === null || !cur.push(chunk)) this.source.pause();
  }

  /** @internal */
  onEnd(): void {
    this.ended = true;
    const cur = this.current;
    if (cur) {
      cur.owner = null;
      this.current = null;
      cur.push(null);
    }
  }

  /** @internal */
  onError(err: Error): void {
    this.error = err;
    const cur = this.current;
    this.current = null;
    cur?.destroy(err);
  }
}
