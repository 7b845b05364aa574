/**
 * Test support: real clients (the curl binary, a raw HTTP/1.1 socket reader) used by the
 * protocol integration tests.
 */
import { execFile } from 'node:child_process';
import net from 'node:net';

export interface CurlResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/** Run /usr/bin/curl with `args`; never throws on a non-zero exit (the code is returned). */
export function curl(args: string[], timeoutMs = 30_000): Promise<CurlResult> {
  return new Promise((resolve) => {
    execFile(
      '/usr/bin/curl',
      ['--silent', '--show-error', '--max-time', String(Math.ceil(timeoutMs / 1000)), ...args],
      { encoding: 'buffer', maxBuffer: 64 << 20, timeout: timeoutMs + 5000 },
      (err, stdout, stderr) => {
        const code = err ? Number((err as NodeJS.ErrnoException).code ?? 1) || 1 : 0;
        resolve({ code, stdout, stderr: stderr.toString('utf8') });
      },
    );
  });
}

export interface RawResponse {
  status: number;
  /** Header lines in order, names lower-cased: [name, value][]. */
  headers: [string, string][];
  body: Buffer;
  trailers: [string, string][];
  chunked: boolean;
}

/**
 * A minimal HTTP/1.1 response reader over one socket, so tests see exactly what went on
 * the wire (trailers, repeated headers, whether a body was sent after HEAD/204/304).
 */
export class RawHttp {
  readonly socket: net.Socket;
  #buf = Buffer.alloc(0);
  #waiters: (() => void)[] = [];
  #ended = false;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, d]);
      this.#wake();
    });
    socket.on('end', () => {
      this.#ended = true;
      this.#wake();
    });
    socket.on('error', () => {
      this.#ended = true;
      this.#wake();
    });
  }

  static connect(port: number): Promise<RawHttp> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(new RawHttp(s)));
      s.once('error', reject);
    });
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  async #more(): Promise<void> {
    if (this.#ended) throw new Error('connection ended');
    await new Promise<void>((r) => this.#waiters.push(r));
  }

  async #line(): Promise<string> {
    for (;;) {
      const i = this.#buf.indexOf('\r\n');
      if (i >= 0) {
        const line = this.#buf.subarray(0, i).toString('latin1');
        this.#buf = this.#buf.subarray(i + 2);
        return line;
      }
      await this.#more();
    }
  }

  async #bytes(n: number): Promise<Buffer> {
    while (this.#buf.length < n) await this.#more();
    const out = this.#buf.subarray(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }

  async #fields(): Promise<[string, string][]> {
    const out: [string, string][] = [];
    for (;;) {
      const line = await this.#line();
      if (line === '') return out;
      const c = line.indexOf(':');
      out.push([line.slice(0, c).toLowerCase(), line.slice(c + 1).trim()]);
    }
  }

  /** Bytes received but not consumed by a response (anything after the last parsed one). */
  get leftover(): Buffer {
    return this.#buf;
  }

  write(s: string | Buffer): void {
    this.socket.write(s);
  }

  /** Read one response; `bodyless` for responses to HEAD. Interim (1xx) responses are returned too. */
  async response(bodyless = false): Promise<RawResponse> {
    const statusLine = await this.#line();
    const status = Number(statusLine.split(' ')[1]);
    const headers = await this.#fields();
    const get = (n: string) => headers.find(([k]) => k === n)?.[1];
    const res: RawResponse = { status, headers, body: Buffer.alloc(0), trailers: [], chunked: false };
    if (bodyless || status < 200 || status === 204 || status === 304) return res;
    if (get('transfer-encoding')?.toLowerCase().includes('chunked')) {
      res.chunked = true;
      const parts: Buffer[] = [];
      for (;;) {
        const size = parseInt((await this.#line()).split(';')[0], 16);
        if (size === 0) break;
        parts.push(await this.#bytes(size));
        await this.#line();
      }
      res.body = Buffer.concat(parts);
      res.trailers = await this.#fields();
      return res;
    }
    const cl = get('content-length');
    if (cl !== undefined) {
      res.body = await this.#bytes(Number(cl));
      return res;
    }
    while (!this.#ended) await this.#more().catch(() => {});
    res.body = this.#buf;
    this.#buf = Buffer.alloc(0);
    return res;
  }

  /** Wait until `ms` passed; returns whatever arrived unparsed in the meantime. */
  async idle(ms: number): Promise<Buffer> {
    await new Promise((r) => setTimeout(r, ms));
    return this.#buf;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Resolve when `p` resolves, reject with `what` after `ms`. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]);
}

/** A promise with its resolve function outside. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}
