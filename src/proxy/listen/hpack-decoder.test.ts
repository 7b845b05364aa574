/**
 * The HPACK decoder against a real encoder: node:http2 (nghttp2) clients send random requests
 * (Huffman-coded strings, dynamic-table indexing and eviction across the requests of one
 * connection); the bytes they send are recorded and decoded here, and must give exactly the
 * fields the HTTP/2 server received. Valid fields raise no problem in the header inspector.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { test } from 'node:test';
import fc from 'fast-check';
import { HeaderInspector } from './h2-header-inspector.ts';
import { HpackDecoder } from './hpack-decoder.ts';

const PREFACE_LENGTH = 24;

interface Captured {
  bytes: Buffer[];
  received: [string, string][][];
}

/** Send `requests` on one connection; return the client's bytes and what the server got. */
async function exchange(requests: [string, string][][]): Promise<Captured> {
  const got: Captured = { bytes: [], received: [] };
  const server = http2.createServer({ settings: { maxHeaderListSize: 1 << 20 } });
  server.on('stream', (stream: http2.ServerHttp2Stream, _h: unknown, _flags: number, raw: string[]) => {
    const fields: [string, string][] = [];
    for (let i = 0; i < raw.length; i += 2) fields.push([raw[i], raw[i + 1]]);
    got.received.push(fields);
    stream.respond({ ':status': 200 }, { endStream: true });
  });
  // A relay that records what the client writes.
  const relay = net.createServer((c) => {
    const up = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    c.on('data', (d: Buffer) => got.bytes.push(d));
    c.pipe(up).pipe(c);
    c.on('error', () => up.destroy());
    up.on('error', () => c.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', () => r()));
  const session = http2.connect(`http://127.0.0.1:${(relay.address() as net.AddressInfo).port}`);
  try {
    for (const fields of requests) {
      await new Promise<void>((resolve, reject) => {
        const headers: http2.OutgoingHttpHeaders = { ':path': '/p' };
        for (const [k, v] of fields) headers[k] = v;
        const s = session.request(headers);
        s.on('error', reject);
        s.resume();
        s.on('close', () => resolve());
      });
    }
  } finally {
    session.destroy();
    relay.close();
    server.close();
  }
  return got;
}

/** The header blocks of the client's HEADERS frames (END_HEADERS set, as node:http2 sends them). */
function headerBlocks(bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let i = PREFACE_LENGTH;
  while (i + 9 <= bytes.length) {
    const len = bytes.readUIntBE(i, 3);
    const type = bytes[i + 3];
    const flags = bytes[i + 4];
    let payload = bytes.subarray(i + 9, i + 9 + len);
    if (type === 1) {
      if (flags & 0x8) payload = payload.subarray(1, payload.length - payload[0]);
      if (flags & 0x20) payload = payload.subarray(5);
      out.push(payload);
    }
    i += 9 + len;
  }
  return out;
}

const tokenChar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789-_.'.split(''));
const name = fc
  .array(tokenChar, { minLength: 1, maxLength: 20 })
  .map((cs) => `x-${cs.join('')}`)
  .filter((n) => !n.endsWith('-'));
const value = fc.oneof(
  fc.string({
    unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'.split('')),
    maxLength: 40,
  }),
  // Printable ASCII incl. symbols Huffman codes long, no edge whitespace.
  fc.string({
    unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)),
    minLength: 1,
    maxLength: 300,
  }),
  // Long values evict dynamic-table entries.
  fc.nat(3000).map((n) => 'v'.repeat(n + 1)),
);
const request = fc.array(fc.tuple(name, value), { maxLength: 8 }).map((fields) => {
  // node:http2 joins repeated names; keep one of each.
  const seen = new Map(fields);
  return [...seen];
});

test('HpackDecoder decodes exactly what nghttp2 encoded, across requests of one connection', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(request, { minLength: 1, maxLength: 6 }), async (requests) => {
      const got = await exchange(requests);
      const bytes = Buffer.concat(got.bytes);
      const decoder = new HpackDecoder();
      const decoded = headerBlocks(bytes).map((b) => decoder.decode(b));
      assert.deepEqual(decoded, got.received);
      const inspector = new HeaderInspector();
      inspector.feed(bytes);
      for (let id = 1; id < 2 * requests.length; id += 2) assert.equal(inspector.problem(id), undefined);
    }),
    { numRuns: 40 },
  );
});

test('HeaderInspector follows frames split at every byte', () => {
  const encoder = Buffer.concat([
    Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'),
    // SETTINGS (empty), then HEADERS stream 1 with PADDED + PRIORITY: x-a: "a\nb" (literal).
    Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]),
  ]);
  const block = Buffer.from([0, 3, ...Buffer.from('x-a'), 3, ...Buffer.from('a\nb')]);
  const payload = Buffer.concat([Buffer.from([2]), Buffer.from([0, 0, 0, 0, 16]), block, Buffer.alloc(2)]);
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = 1;
  head[4] = 0x4 | 0x1 | 0x8 | 0x20;
  head.writeUInt32BE(1, 5);
  const all = Buffer.concat([encoder, head, payload]);
  const inspector = new HeaderInspector();
  for (let i = 0; i < all.length; i++) inspector.feed(all.subarray(i, i + 1));
  assert.match(inspector.problem(1) ?? '', /invalid value for header x-a/);
  assert.equal(inspector.problem(1), undefined, 'a problem is handed out once');
});

test('HeaderInspector: past the reset budget no more bytes pass, not even the rest of the chunk', () => {
  const rst = (id: number) => Buffer.from([0, 0, 4, 3, 0, 0, 0, 0, id, 0, 0, 0, 8]);
  const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
  const chunk = Buffer.concat([preface, rst(1), rst(3), rst(5), rst(7), rst(9)]);
  const inspector = new HeaderInspector({ budget: 3, windowMs: 60_000 });
  assert.equal(
    inspector.feed(chunk),
    preface.length + 3 * 13,
    'the fourth RST_STREAM and all after it are held back',
  );
  assert.ok(inspector.flooded);
  assert.equal(inspector.feed(rst(11)), 0);
  const lenient = new HeaderInspector();
  assert.equal(lenient.feed(chunk), chunk.length, 'no limit, no holding back');
});
