/**
 * The quick start: `hexmesh demo --once` starts two apps and two sidecars on fixed loopback
 * ports, sends a request across the mesh, prints it and exits 0.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { runCli } from '../support/cli.ts';

/** The ports examples/quickstart/ uses (apps, sidecar listeners, admin). */
const PORTS = [14140, 14143, 14191, 18080, 19080, 24140, 24143, 24191];

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

test('hexmesh demo --once: a request crosses the mesh and the command exits 0', async (t) => {
  const busy = [];
  for (const p of PORTS) if (!(await isFree(p))) busy.push(p);
  if (busy.length) {
    t.skip(`quick-start ports in use on this machine: ${busy.join(', ')}`);
    return;
  }
  const r = await runCli(['demo', '--once'], 60_000);
  assert.equal(r.signal, null, `demo hung and was killed\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  assert.equal(r.code, 0, `stdout: ${r.stdout}\nstderr: ${r.stderr}`);
  assert.match(r.stdout, /Response 200: .*"service":"reviews"/);
  assert.match(r.stdout, /Frontend sidecar counted it: hexmesh_requests_total\{.*direction="outbound"/);
  // Everything it started is gone: the ports are free again.
  for (const p of PORTS) assert.ok(await isFree(p), `port ${p} still bound after demo --once`);
});
