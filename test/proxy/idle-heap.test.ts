/**
 * A real `hexmesh proxy` gives back the young generation it grew under load once it is quiet
 * (src/proxy/core/idle-heap.ts, wired in `hexmesh proxy`): the size is read where an operator
 * reads it, the admin `/metrics` (`hexmesh_proxy_nodejs_heap_space_size_total_bytes`). With the
 * call in `hexmesh proxy` removed, the size stays at 8 MiB here (checked).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CliProxy } from '../support/cli.ts';
import { startHttpServer } from '../support/mesh.ts';

const NEW_SPACE = /^hexmesh_proxy_nodejs_heap_space_size_total_bytes\{space="new"\} (\d+)/m;

async function newSpaceMiB(adminUrl: string): Promise<number> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  const m = NEW_SPACE.exec(text);
  assert.ok(m, 'the admin /metrics carries the young generation size');
  return Number(m[1]) / 1048576;
}

/** `total` requests through `port`, `concurrency` at a time on keep-alive connections. */
async function load(port: number, total: number, concurrency: number): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  let sent = 0;
  let ok = 0;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port, path: '/', headers: { host: 'web' }, agent }, (res) => {
          res.resume();
          res.on('end', () => {
            if (res.statusCode === 200) ok++;
            resolve();
          });
        })
        .on('error', reject);
    });
  const worker = async () => {
    while (sent < total) {
      sent++;
      await one();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  agent.destroy();
  return ok;
}

test(
  'a real proxy grows its young generation under load and gives it back once quiet',
  { timeout: 90_000 },
  async (t) => {
    const body = Buffer.alloc(1024, 'x');
    const app = await startHttpServer((_req, res) => res.end(body));
    t.after(() => app.close());
    const dir = mkdtempSync(join(tmpdir(), 'hexmesh-idle-heap-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'web.json');
    const any = { address: '127.0.0.1', port: 0 };
    writeFileSync(
      file,
      JSON.stringify({
        proxy: {
          service: 'web',
          outbound: any,
          inbound: any,
          admin: any,
          app: { port: app.port },
        },
      }),
    );
    const proxy = await CliProxy.start(file);
    t.after(() => proxy.kill());

    const rest = await newSpaceMiB(proxy.adminUrl);
    // Through the inbound listener to the app: bounded in count, 32 at a time.
    const ok = await load(proxy.inboundPort, 30_000, 32);
    assert.equal(ok, 30_000, 'every request answered');
    const grown = await newSpaceMiB(proxy.adminUrl);
    assert.ok(grown > rest, `the load grew it: ${rest} → ${grown} MiB`);

    // Quiet now: one scavenge about a second in, the shrink 5.5 s later. Nothing may touch the
    // proxy meanwhile: scrapes allocate, and enough of them end in a scavenge of V8's own that
    // shrinks it too (then this test would pass without idle-heap.ts).
    await new Promise((r) => setTimeout(r, 14_000));
    const now = await newSpaceMiB(proxy.adminUrl);
    assert.ok(
      now <= rest,
      `back to ${rest} MiB 14 s after the load (${grown} MiB at its end), got ${now} MiB`,
    );
  },
);
