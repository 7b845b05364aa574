/**
 * HTTP/2 flow control end to end through two sidecars (client outbound → server inbound → app,
 * in-process proxies on real loopback sockets, an h2c app and an HTTP/1.1 app): a client that
 * reads slowly holds the app's writes back, so what the hops buffer stays bounded however
 * large the body, and it still gets the body byte-exact; an app that reads slowly holds an
 * HTTP/2 client's upload back the same way; a client that resets its stream mid-download
 * aborts the app's response, and its connection keeps serving.
 *
 * The HTTP/2 listener relays response and request bodies with Relay (src/proxy/core/relay.ts)
 * instead of pipe: a relay that ignored write() returning false would have each hop read its
 * upstream to the end into memory, and the app would finish writing 32 MiB to a client that
 * has read 1 MiB.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { within } from '../support/clients.ts';
import { startHttpServer, startPair, type Pair } from '../support/mesh.ts';

const { NGHTTP2_CANCEL } = http2.constants;

const MiB = 1 << 20;
const CHUNK = 64 * 1024;
const BODY = 32 * MiB;
const CHUNKS = BODY / CHUNK;
/** What the slow side reads before it stops reading. */
const READ_FIRST = MiB;

/** Chunk `i` of the body: its byte offsets as 32-bit words, so a chunk lost, repeated or moved shows. */
function chunkAt(i: number): Buffer {
  const c = Buffer.allocUnsafe(CHUNK);
  for (let o = 0; o < CHUNK; o += 4) c.writeUInt32BE(i * CHUNK + o, o);
  return c;
}

const BODY_SHA = (() => {
  const h = createHash('sha256');
  for (let i = 0; i < CHUNKS; i++) h.update(chunkAt(i));
  return h.digest('hex');
})();

/**
 * Writes the body one chunk at a time, the next once the last write's callback fired (its
 * transport took it), counting there: `onWritten` sees what the writer got past its own
 * writable, never what merely sits in its buffer.
 */
function writeBody(
  w: { write(c: Buffer, cb: (err?: Error | null) => void): unknown; end(): unknown },
  onWritten: (n: number) => void,
  onDone: () => void = () => {},
): void {
  let i = 0;
  const next = (err?: Error | null): void => {
    if (err) return;
    if (i > 0) onWritten(CHUNK);
    if (i === CHUNKS) {
      w.end();
      onDone();
      return;
    }
    w.write(chunkAt(i++), next);
  };
  next();
}

/** An app's side of one /big response: bytes its transport took, and how it ended. */
interface Download {
  written: number;
  finished: boolean;
  closed: Promise<void>;
}

/** An app's side of one /upload request: it reads `READ_FIRST` bytes, then waits for `resume()`. */
interface Upload {
  read: number;
  done: Promise<{ length: number; sha: string }>;
  resume(): void;
}

function slowReader(body: Readable): Upload {
  const h = createHash('sha256');
  let held = false;
  const u: Upload = {
    read: 0,
    done: new Promise((resolve) => body.once('end', () => resolve({ length: u.read, sha: h.digest('hex') }))),
    resume: () => body.resume(),
  };
  body.on('data', (d: Buffer) => {
    h.update(d);
    u.read += d.length;
    if (!held && u.read >= READ_FIRST) {
      held = true;
      body.pause();
    }
  });
  return u;
}

interface App {
  port: number;
  downloads: Download[];
  uploads: Upload[];
  close(): Promise<void>;
}

async function startH2App(): Promise<App> {
  const app: App = { port: 0, downloads: [], uploads: [], close: async () => {} };
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    const path = headers[':path'];
    if (path === '/big') {
      const d: Download = {
        written: 0,
        finished: false,
        closed: new Promise((r) => stream.once('close', r)),
      };
      app.downloads.push(d);
      stream.respond({ ':status': 200, 'content-length': String(BODY) });
      writeBody(
        stream,
        (n) => (d.written += n),
        () => (d.finished = true),
      );
    } else if (path === '/upload') {
      const u = slowReader(stream);
      app.uploads.push(u);
      void u.done.then(() => stream.respond({ ':status': 200 }, { endStream: true }));
    } else {
      stream.respond({ ':status': 200 });
      stream.end('small');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  app.port = (server.address() as AddressInfo).port;
  app.close = () =>
    new Promise<void>((r) => {
      for (const s of sessions) s.destroy();
      server.close(() => r());
    });
  return app;
}

async function startH1App(): Promise<App> {
  const downloads: Download[] = [];
  const uploads: Upload[] = [];
  const server = await startHttpServer((req, res) => {
    req.on('error', () => {});
    res.on('error', () => {});
    if (req.url === '/big') {
      const d: Download = { written: 0, finished: false, closed: new Promise((r) => res.once('close', r)) };
      downloads.push(d);
      res.writeHead(200, { 'content-length': String(BODY) });
      writeBody(
        res,
        (n) => (d.written += n),
        () => (d.finished = true),
      );
    } else if (req.url === '/upload') {
      const u = slowReader(req);
      uploads.push(u);
      void u.done.then(() => res.end());
    } else res.end('small');
  });
  return { port: server.port, downloads, uploads, close: server.close };
}

interface Mesh {
  app: App;
  pair: Pair;
  authority: string;
  /**
   * The most the app may have sent beyond what the slow side read, once everything settled
   * (the h2c figures are those of Node's defaults, which neither the sidecars nor these
   * clients change; measured on loopback, Node 20):
   * - h2c app: three HTTP/2 hops, each with a 64 KiB stream window; measured 192 KiB both
   *   ways. Bound 1 MiB.
   * - HTTP/1.1 app: two HTTP/2 hops plus one TCP connection, whose kernel buffers hold what
   *   flow control does not (the app's send buffer, net.ipv4.tcp_wmem up to 4 MiB, and the
   *   server sidecar's receive buffer); measured 4.1 MiB down, 4.2–5.6 MiB up. Bound 12 MiB.
   * A hop that ignores backpressure lets all 32 MiB through.
   */
  bound: number;
}

const meshes = new Map<string, Mesh>();

before(async () => {
  const h2app = await startH2App();
  meshes.set('h2c app', {
    app: h2app,
    authority: 'h2svc',
    pair: await startPair({ service: 'h2svc', appPort: h2app.port, appProtocol: 'http2' }),
    bound: MiB,
  });
  const h1app = await startH1App();
  meshes.set('HTTP/1.1 app', {
    app: h1app,
    authority: 'h1svc',
    pair: await startPair({ service: 'h1svc', appPort: h1app.port }),
    bound: 12 * MiB,
  });
});

after(async () => {
  for (const m of meshes.values()) {
    await m.pair.close();
    await m.app.close();
  }
});

function connect(m: Mesh): http2.ClientHttp2Session {
  const session = http2.connect(`http://127.0.0.1:${m.pair.client.addr.outbound.port}`);
  session.on('error', () => {});
  return session;
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * `value()` once it has not moved for `quietMs`: flow control has stopped the writer. Nothing
 * signals "blocked", so this polls, bounded: a writer still moving after `timeoutMs` fails.
 */
async function settled(
  what: string,
  value: () => number,
  quietMs = 500,
  timeoutMs = 15_000,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = value();
  let since = Date.now();
  for (;;) {
    await new Promise((r) => setTimeout(r, 25));
    const v = value();
    if (v !== last) {
      last = v;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) return v;
    if (Date.now() > deadline) assert.fail(`${what} still moving after ${timeoutMs} ms (at ${v} bytes)`);
  }
}

/** Reads `stream` until `atLeast` bytes arrived, then pauses it; resolves with the bytes read. */
function readThenPause(stream: Readable, h: ReturnType<typeof createHash>, atLeast: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let read = 0;
    const onData = (d: Buffer): void => {
      h.update(d);
      read += d.length;
      if (read < atLeast) return;
      stream.pause();
      stream.off('data', onData);
      stream.off('error', reject);
      resolve(read);
    };
    stream.on('data', onData);
    stream.once('error', reject);
  });
}

/** Reads the rest of `stream` into `h`; resolves with the bytes read. */
function readRest(stream: Readable, h: ReturnType<typeof createHash>): Promise<number> {
  return new Promise((resolve, reject) => {
    let read = 0;
    stream.on('data', (d: Buffer) => {
      h.update(d);
      read += d.length;
    });
    stream.once('end', () => resolve(read));
    stream.once('error', reject);
    stream.resume();
  });
}

for (const name of ['h2c app', 'HTTP/1.1 app']) {
  test(`${name}: a slow HTTP/2 reader holds the app's writes back, and gets the 32 MiB body byte-exact`, async () => {
    const mesh = meshes.get(name)!;
    const session = connect(mesh);
    try {
      const stream = session.request({ ':path': '/big', ':authority': mesh.authority });
      const h = createHash('sha256');
      const first = await within(readThenPause(stream, h, READ_FIRST), 15_000, 'the first MiB');
      const d = mesh.app.downloads.at(-1)!;
      const written = await settled('the app writing to a paused reader', () => d.written);
      assert.ok(
        written - first <= mesh.bound,
        `the app wrote ${written} bytes to a client that read ${first}: ${written - first} in the hops (bound ${mesh.bound})`,
      );
      const rest = await within(readRest(stream, h), 30_000, 'the rest of the body');
      assert.equal(first + rest, BODY);
      assert.equal(h.digest('hex'), BODY_SHA);
      assert.equal(d.finished, true);
    } finally {
      session.destroy();
    }
  });

  test(`${name}: an app that reads slowly holds an HTTP/2 client's 32 MiB upload back, and gets it byte-exact`, async () => {
    const mesh = meshes.get(name)!;
    const session = connect(mesh);
    try {
      const stream = session.request({ ':method': 'POST', ':path': '/upload', ':authority': mesh.authority });
      stream.on('error', () => {});
      const response = new Promise((r) => stream.once('response', (hd) => r(hd[':status'])));
      let sent = 0;
      writeBody(stream, (n) => (sent += n));
      const uploads = mesh.app.uploads;
      const count = uploads.length;
      await waitFor(
        'the app reading its first MiB',
        () => uploads.length > count && uploads.at(-1)!.read >= READ_FIRST,
      );
      const u = uploads.at(-1)!;
      const s = await settled('the client writing to a paused app', () => sent);
      assert.ok(
        s - u.read <= mesh.bound,
        `the client sent ${s} bytes to an app that read ${u.read}: ${s - u.read} in the hops (bound ${mesh.bound})`,
      );
      u.resume();
      assert.deepEqual(await within(u.done, 30_000, 'the whole upload'), { length: BODY, sha: BODY_SHA });
      assert.equal(await within(response, 5000, 'the response'), 200);
    } finally {
      session.destroy();
    }
  });

  test(`${name}: a client that resets its stream mid-download (CANCEL) aborts the app's response; its connection keeps serving`, async () => {
    const mesh = meshes.get(name)!;
    const session = connect(mesh);
    try {
      const stream = session.request({ ':path': '/big', ':authority': mesh.authority });
      stream.on('error', () => {});
      await within(readThenPause(stream, createHash('sha256'), READ_FIRST), 15_000, 'the first MiB');
      const d = mesh.app.downloads.at(-1)!;
      stream.close(NGHTTP2_CANCEL);
      await within(d.closed, 5000, "the app's response closing after the client's reset");
      assert.equal(d.finished, false, 'the app wrote its whole response to a client that went away');
      assert.ok(d.written < BODY);
      // The same connection: the reset took one stream, not the session.
      const next = session.request({ ':path': '/small', ':authority': mesh.authority });
      const h = createHash('sha256');
      assert.equal(await within(readRest(next, h), 5000, 'the next request'), 'small'.length);
      assert.equal(h.digest('hex'), createHash('sha256').update('small').digest('hex'));
      assert.equal(session.destroyed || session.closed, false);
    } finally {
      session.destroy();
    }
  });
}
