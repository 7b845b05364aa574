/**
 * Control-plane tap (`GET /v1/tap`) fans in from every instance of a service, reports a
 * proxy going away in-stream; `hexmesh tap` prints it; `hexmesh top --once -o json`
 * aggregates it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runCli } from '../support/cli.ts';
import { events, openStream } from '../telemetry/tap-support.ts';
import { startViewsMesh } from './mesh-views-support.ts';
import { Running } from './control-support.ts';

test(
  'control-plane tap fans in from two instances and reports one going away',
  { timeout: 60_000 },
  async (t) => {
    const m = await startViewsMesh();
    t.after(() => m.close());
    const s = await openStream(`${m.cp.url}/v1/tap?service=ratings&path=/fan`);
    t.after(() => s.close());
    const start = s.lines[0] as { type: string; proxies: { id: string }[] };
    assert.equal(start.type, 'start');
    assert.deepEqual(start.proxies.map((p) => p.id).sort(), ['ratings-1', 'ratings-2']);
    // Give the fan-in a moment to attach to both proxies' admin streams.
    await new Promise((r) => setTimeout(r, 300));
    await m.load(40, (i) => `/fan/${i}?secret=x`);
    await m.call('/other');
    assert.ok(await s.waitFor((l) => events(l).length >= 40));
    const ev = events(s.lines);
    assert.equal(ev.length, 40, 'the path filter is applied by the proxies');
    assert.deepEqual([...new Set(ev.map((e) => e.proxy))].sort(), ['ratings-1', 'ratings-2']);
    assert.ok(
      ev.every((e) => e.direction === 'inbound' && e.dstService === 'ratings' && e.srcService === 'client'),
    );
    assert.ok(!s.raw().includes('secret'));

    await m.ratings[1].close();
    assert.ok(await s.waitFor((l) => l.some((x) => x.type === 'proxy-gone' && x.proxy === 'ratings-2')));

    const missing = await fetch(`${m.cp.url}/v1/tap?service=nope`);
    assert.equal(missing.status, 404);
    const bad = await fetch(`${m.cp.url}/v1/tap?service=ratings&status=99`);
    assert.equal(bad.status, 400);
    await bad.body?.cancel();
    await missing.body?.cancel();
  },
);

test(
  'hexmesh tap prints live requests; hexmesh top --once -o json aggregates them',
  { timeout: 60_000 },
  async (t) => {
    const m = await startViewsMesh();
    t.after(() => m.close());
    const env = { HEXMESH_CONTROL: m.cp.url };
    const tap = new Running(['tap', 'ratings', '--status', '5xx', '--limit', '3', '-o', 'json'], env);
    t.after(() => tap.child.kill());
    await tap.waitFor(/"type":"start"/, 30_000); // the first run may rebuild the bundle
    const top = new Running(['top', 'ratings', '--once', '--for', '6s', '-o', 'json'], env);
    t.after(() => top.child.kill());
    // Load until top has watched its --for and exited (it prints only then), however long the
    // process takes to start and attach on a loaded machine; bounded in time.
    let next = 0;
    const end = Date.now() + 60_000;
    while (top.child.exitCode === null && top.child.signalCode === null && Date.now() < end) {
      await m.call(next % 4 === 0 ? '/fail/x' : `/busy/${next % 2}`);
      next++;
    }
    const tr = { ...tap, ...(await tap.exited) };
    assert.equal(tr.code, 0, `stdout: ${tap.stdout}\nstderr: ${tap.stderr}`);
    const lines = tap.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const reqs = lines.filter((l) => l.type === 'request');
    assert.equal(reqs.length, 3);
    assert.ok(reqs.every((r) => r.status === 503 && r.path === '/fail/x'));
    assert.equal(lines.at(-1).type, 'end');

    const topExit = await top.exited;
    assert.equal(topExit.code, 0, top.stderr);
    const view = JSON.parse(top.stdout);
    assert.equal(view.service, 'ratings');
    const paths = view.rows.map((r: { path: string }) => r.path);
    assert.ok(
      paths.includes('/busy/0') && paths.includes('/busy/1') && paths.includes('/fail/x'),
      paths.join(','),
    );
    const fail = view.rows.find((r: { path: string }) => r.path === '/fail/x');
    assert.equal(fail.successRate, 0);
    const busy = view.rows.find((r: { path: string }) => r.path === '/busy/0');
    assert.equal(busy.successRate, 1);
    assert.ok(busy.p50Ms >= 0 && busy.p99Ms >= busy.p50Ms);
    assert.ok(view.rows[0].count >= view.rows.at(-1).count, 'busiest first');
    const total = view.rows.reduce((n: number, r: { count: number }) => n + r.count, 0);
    assert.equal(total + view.dropped, view.events + view.dropped);

    const text = await runCli(['tap', 'ratings', '--status', 'abc', '--control', m.cp.url]);
    assert.equal(text.code, 2, text.stderr);
    assert.match(text.stderr, /status must be like 5xx/);
  },
);
