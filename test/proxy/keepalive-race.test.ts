/**
 * Issue 9, keep-alive race: an app that closes each keep-alive connection right after its
 * response (no `Connection: close`) races the sidecar's next request on that pooled
 * connection. An idempotent request that failed on a reused connection before any response
 * byte is retried by the server-side sidecar (as Go's net/http and undici's retry interceptor
 * do), and a peer sidecar's reset-before-response 502 is retried by the client sidecar: no
 * GET may fail.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import { Agent, request } from 'undici';
import { startHttpServer, startPair, startProxy, type Pair } from '../support/mesh.ts';

const REQUESTS = 2000;
const CONCURRENCY = 8;

/**
 * The app runs in its own process: its close then races the sidecar's next write as it would
 * in production (in this process the event loop would serialise the two).
 */
const APP = `
const http = require('node:http');
const delay = Number(process.argv[1]);
const srv = http.createServer((req, res) => {
  res.on('finish', () => {
    const s = req.socket;
    if (delay === 0) s.destroy(); else setTimeout(() => s.destroy(), delay);
  });
  res.end('ok');
});
srv.listen(0, '127.0.0.1', () => process.stdout.write(srv.address().port + '\\n'));
`;

interface Closer {
  app: ChildProcess;
  mesh: Pair;
}

/** An app that answers, then closes the connection `delayMs` later (0: as soon as the response is out). */
async function closingApp(delayMs: number): Promise<Closer> {
  const app = spawn(process.execPath, ['-e', APP, String(delayMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = (await once(app.stdout!, 'data')) as [Buffer];
  const mesh = await startPair({ service: 'closer', appPort: Number(line.toString().trim()) });
  return { app, mesh };
}

let immediate: Closer;
let delayed: Closer;
const agent = new Agent({ connections: CONCURRENCY });

before(async () => {
  immediate = await closingApp(0);
  delayed = await closingApp(1);
});

after(async () => {
  await agent.close();
  for (const c of [immediate, delayed]) {
    await c.mesh.close();
    c.app.kill();
  }
});

/** `REQUESTS` GETs, `CONCURRENCY` at a time; returns the failures (status and x-hexmesh-error). */
async function hammer(c: Closer): Promise<string[]> {
  const failures: string[] = [];
  let next = 0;
  const deadline = Date.now() + 240_000;
  const worker = async (): Promise<void> => {
    while (next < REQUESTS && Date.now() < deadline) {
      next++;
      try {
        const res = await request(`${c.mesh.client.outboundUrl}/x`, {
          dispatcher: agent,
          headers: { host: 'closer' },
        });
        const body = await res.body.text();
        if (res.statusCode !== 200 || body !== 'ok')
          failures.push(`${res.statusCode} ${String(res.headers['x-hexmesh-error'])} ${body.trim()}`);
      } catch (err) {
        failures.push(`client error ${(err as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  assert.equal(next, REQUESTS, 'every request was sent within the time bound');
  return failures;
}

for (const [name, get] of [
  ['closes immediately after each response', () => immediate],
  ['closes 1 ms after each response', () => delayed],
] as const) {
  test(`keep-alive race: ${REQUESTS} GETs at concurrency ${CONCURRENCY} to an app that ${name}: none fails`, async () => {
    const failures = await hammer(get());
    assert.deepEqual(
      failures.slice(0, 5),
      [],
      `${failures.length} of ${REQUESTS} failed, e.g. ${failures.slice(0, 5).join(' | ')}`,
    );
  });
}

test("the client sidecar retries a peer sidecar's reset-before-response 502 for GET, not for POST", async () => {
  // Stands in for a server-side sidecar whose app reset the first try of each path.
  const hits = new Map<string, number>();
  const peer = await startHttpServer((req, res) => {
    const key = `${req.method} ${req.url}`;
    const n = (hits.get(key) ?? 0) + 1;
    hits.set(key, n);
    req.resume();
    if (n === 1) {
      res.writeHead(502, { 'x-hexmesh-error': 'upstream-reset', 'content-type': 'text/plain' });
      res.end('upstream 127.0.0.1:1 reset the request calling peer (ECONNRESET)\n');
    } else res.end(`try ${n}`);
  });
  const client = await startProxy({
    proxy: { service: 'client' },
    services: [
      {
        name: 'peer',
        ports: [{ port: 80, protocol: 'http' }],
        endpoints: [{ address: '127.0.0.1', port: peer.port }],
      },
    ],
  });
  try {
    const get = await request(`${client.outboundUrl}/a`, { headers: { host: 'peer' } });
    assert.equal(get.statusCode, 200);
    assert.equal(await get.body.text(), 'try 2');
    const post = await request(`${client.outboundUrl}/b`, {
      method: 'POST',
      body: 'x',
      headers: { host: 'peer' },
    });
    assert.equal(post.statusCode, 502, 'a POST may have had effects: not retried');
    assert.equal(post.headers['x-hexmesh-error'], 'upstream-reset');
    await post.body.text();
    assert.deepEqual(
      [...hits],
      [
        ['GET /a', 2],
        ['POST /b', 1],
      ],
    );
  } finally {
    await client.close();
    await peer.close();
  }
});
