/**
 * CLI conventions (issue 15) against a real control plane and sidecars: a view of one named
 * service with nothing in it exits 4 (not 0 with an empty table), `-o yaml` on the lists and
 * views, and no terminal escape codes when stdout is not a terminal.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { parse } from 'yaml';
import { startViewsMesh } from './mesh-views-support.ts';
import { hexmesh } from './control-support.ts';
import { BIN } from '../support/cli.ts';

test(
  'named-service views exit 4 when empty; -o yaml on services, endpoints, stat, edges, routes; no escapes off a TTY',
  { timeout: 120_000 },
  async (t) => {
    const m = await startViewsMesh();
    t.after(() => m.close());
    const ctl = ['--control', m.cp.url];
    await m.load(20);

    for (const args of [
      ['stat', 'nosuch'],
      ['routes', 'nosuch'],
    ]) {
      const r = await hexmesh([...args, ...ctl]);
      assert.equal(r.code, 4, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /no figures for service "nosuch"/);
      assert.equal(r.stdout, '');
    }
    const endpoints = await hexmesh(['endpoints', 'nosuch', ...ctl]);
    assert.equal(endpoints.code, 4);

    // The same views of a service with traffic succeed (poll: the scrape needs a moment).
    const deadline = Date.now() + 30_000;
    let stat;
    do {
      stat = await hexmesh(['stat', 'ratings', '-o', 'yaml', ...ctl]);
      if (stat.code === 0) break;
      await m.load(10);
    } while (Date.now() < deadline);
    assert.equal(stat.code, 0, stat.stderr);
    assert.equal((parse(stat.stdout) as { services: { service: string }[] }).services[0].service, 'ratings');

    const services = await hexmesh(['services', '-o', 'yaml', ...ctl]);
    assert.equal(services.code, 0, services.stderr);
    assert.ok((parse(services.stdout) as { name: string }[]).some((s) => s.name === 'ratings'));
    const eps = await hexmesh(['endpoints', 'ratings', '-o', 'yaml', ...ctl]);
    assert.equal((parse(eps.stdout) as unknown[]).length, 2);
    const wide = await hexmesh(['endpoints', 'ratings', '-o', 'wide', ...ctl]);
    assert.equal(wide.code, 0, wide.stderr);
    assert.match(wide.stdout, /^ID\s+ADDRESS\s+MESH PORT\s+VERSION\s+STATUS\s+LABELS\s+OUTPUT/);
    const edges = await hexmesh(['edges', '-o', 'yaml', ...ctl]);
    assert.equal(edges.code, 0, edges.stderr);
    assert.ok(typeof parse(edges.stdout) === 'object');
    for (const r of [stat, services, eps, edges])
      assert.ok(!(r.stdout + r.stderr).includes('\u001b['), 'no escape sequences');
  },
);

test('a reader that closes the pipe early ends a one-shot command quietly (no EPIPE crash)', async () => {
  // `hexmesh install --kubernetes | head -1`: the output is far larger than a pipe buffer.
  const child = spawn(process.execPath, [BIN, 'install', '--kubernetes'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  await once(child.stdout, 'readable');
  child.stdout.destroy();
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  assert.deepEqual({ code, signal, stderr }, { code: 0, signal: null, stderr: '' });
});
