/**
 * Issue 10: a 1,000-document `hexmesh apply` interrupted by a control-plane crash reports
 * exactly what was applied and what was not. Real processes: `hexmesh control` (embedded
 * store, fsync'd writes) killed with SIGKILL mid-apply and restarted on the same address and
 * data dir; the real `hexmesh apply` reads the interrupted batch back once it answers again.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Running } from './control-support.ts';
import { freePort } from '../../src/runtime/ports.ts';

const N = 1000;

const running: Running[] = [];
let dir: string | undefined;
after(async () => {
  for (const r of running) await r.stop('SIGKILL');
  if (dir) await rm(dir, { recursive: true, force: true });
});

function control(dataDir: string, port: number): Running {
  const r = new Running(['control', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, '--auth', 'off']);
  running.push(r);
  return r;
}

async function storedNames(url: string): Promise<Set<string>> {
  const res = await fetch(`${url}/v1/resources?kind=Service`);
  assert.equal(res.status, 200);
  return new Set(((await res.json()) as { metadata: { name: string } }[]).map((d) => d.metadata.name));
}

test(
  'issue 10: an apply interrupted by a control-plane kill names every document applied and not applied',
  { timeout: 180_000 },
  async () => {
    dir = await mkdtemp(join(tmpdir(), 'hexmesh-apply-kill-'));
    const dataDir = join(dir, 'data');
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const docs = Array.from(
      { length: N },
      (_, i) =>
        `apiVersion: hexmesh.io/v1alpha1\nkind: Service\nmetadata: { name: svc-${String(i).padStart(4, '0')} }\nspec:\n  ports: [{ port: ${1000 + i} }]\n`,
    );
    const file = join(dir, 'services.yaml');
    await writeFile(file, docs.join('---\n'));

    let cp = control(dataDir, port);
    await cp.waitFor(/listening on/, 60_000);
    const apply = new Running(['apply', '-f', file, '--control', url]);
    running.push(apply);

    // Kill once part of the set is written (and well before all of it is).
    let before = 0;
    for (const deadline = Date.now() + 60_000; Date.now() < deadline;) {
      before = (await storedNames(url)).size;
      if (before >= 150 || apply.child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(apply.child.exitCode, null, `apply finished before the kill: ${apply.stdout.slice(-200)}`);
    assert.ok(before < N, `only part applied before the kill (${before})`);
    await cp.stop('SIGKILL');
    cp = control(dataDir, port);
    await cp.waitFor(/listening on/, 60_000);

    const { code } = await apply.exited;
    assert.equal(
      code,
      1,
      `exit 1\nstdout: ${apply.stdout.slice(-500)}\nstderr: ${apply.stderr.slice(-2000)}`,
    );
    assert.doesNotMatch(apply.stderr, /^unknown:/m, 'every document was checked');
    assert.match(apply.stderr, /apply interrupted: .*cannot reach control plane/);
    const applied = new Set(
      [...apply.stdout.matchAll(/^Service\/(svc-\d+) (?:created|configured|unchanged|applied)$/gm)].map(
        (m) => m[1],
      ),
    );
    const notApplied = new Set([...apply.stderr.matchAll(/^ {2}Service\/(svc-\d+)$/gm)].map((m) => m[1]));
    const summary = /(\d+) of 1000 documents applied .*?, (\d+) not applied/.exec(apply.stderr);
    assert.ok(summary, apply.stderr.slice(0, 500));
    assert.equal(Number(summary[1]), applied.size);
    assert.equal(Number(summary[2]), notApplied.size);
    assert.equal(applied.size + notApplied.size, N, 'every document accounted for');
    for (const n of applied) assert.ok(!notApplied.has(n), `${n} in both lists`);
    assert.ok(applied.size >= before, `at least what was seen stored before the kill (${before})`);
    assert.ok(notApplied.size > 0, 'the kill cut the apply short');

    // Exactly: what the CLI says was applied is what the restarted control plane holds.
    const stored = await storedNames(url);
    assert.deepEqual([...stored].sort(), [...applied].sort());

    // And running the same apply again finishes the job.
    const again = new Running(['apply', '-f', file, '--control', url]);
    running.push(again);
    assert.equal((await again.exited).code, 0, again.stderr.slice(-500));
    assert.equal((await storedNames(url)).size, N);
  },
);

test('an apply whose control plane never answers says that none of the documents was applied', async () => {
  const d = await mkdtemp(join(tmpdir(), 'hexmesh-apply-none-'));
  try {
    const file = join(d, 'many.yaml');
    await writeFile(
      file,
      Array.from(
        { length: 150 },
        (_, i) =>
          `apiVersion: hexmesh.io/v1alpha1\nkind: Service\nmetadata: { name: s-${i} }\nspec:\n  ports: [{ port: 80 }]\n`,
      ).join('---\n'),
    );
    const port = await freePort(); // nothing listens there
    const r = new Running(['apply', '-f', file, '--control', `http://127.0.0.1:${port}`]);
    running.push(r);
    assert.equal((await r.exited).code, 1);
    assert.match(r.stderr, /apply interrupted: cannot reach control plane/);
    assert.match(r.stderr, /0 of 150 documents applied .*, 150 not applied/);
    assert.equal([...r.stderr.matchAll(/^ {2}Service\/s-\d+$/gm)].length, 150);
    assert.equal(r.stdout, '');
  } finally {
    await rm(d, { recursive: true, force: true });
  }
});
