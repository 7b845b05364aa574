/**
 * Killing the `hexmesh up` supervisor with SIGKILL (issue 10): its apps, sidecars and
 * control plane die with it (the watchdog), the next `up` kills whatever a previous run
 * still left (watchdog killed too) and starts the revision a rollout already promoted,
 * without running that rollout again — after a crash as after `down`.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { ControlClient } from '../../src/cli/client/control-client.ts';
import { readCredentials } from '../../src/cli/client/credentials.ts';
import type { MeshState } from '../../src/runtime/mesh-runner.ts';
import { rolloutKeys, type HistoryEntry, type RolloutStatus } from '../../src/rollout/rollout-status.ts';
import { BIN, ROOT, cliTestHome, runCli } from '../support/cli.ts';

const APP = join(ROOT, 'test', 'rollout', 'fixtures', 'flaky-app.mjs');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A zombie (killed, not yet reaped by init) is not running.
    return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

function pidsOf(st: MeshState): number[] {
  const out: number[] = [];
  if (st.controlPid) out.push(st.controlPid);
  if (st.watchdogPid) out.push(st.watchdogPid);
  for (const i of st.instances) for (const p of [i.appPid, i.sidecarPid]) if (p) out.push(p);
  return out;
}

async function until<T>(
  what: string,
  ms: number,
  fn: () => Promise<T | undefined> | T | undefined,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await Promise.resolve()
      .then(fn)
      .catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const readState = (dir: string): MeshState | undefined => {
  try {
    return JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as MeshState;
  } catch {
    return undefined;
  }
};

/**
 * A mesh file with `reviews` v1 and a Rollout to v2 with these canary steps, in a temp dir;
 * `up()` starts a foreground supervisor on it (the test SIGKILLs it).
 */
function meshUnderTest(t: TestContext, steps: string) {
  const dir = mkdtempSync(join(tmpdir(), 'hexmesh-supervisor-'));
  const data = join(dir, 'data');
  const file = join(dir, 'mesh.yaml');
  writeFileSync(
    file,
    `controlPlane: { listen: '127.0.0.1:0' }
services:
- name: reviews
  command: node
  args: [${JSON.stringify(APP)}]
  env: { VERSION: v1 }
  version: v1
  healthCheck: { type: http, path: /healthz }
resources:
- apiVersion: hexmesh.io/v1alpha1
  kind: Rollout
  metadata: { name: reviews }
  spec:
    service: reviews
    template:
      command: node
      args: [${JSON.stringify(APP)}]
      env: { VERSION: v2 }
      labels: { version: v2 }
      replicas: 1
      healthCheck: { type: http, path: /healthz }
    strategy:
      canary: { steps: ${steps}, interval: 1s }
`,
  );
  const seen = new Set<number>();
  const ups: ChildProcess[] = [];
  t.after(async () => {
    await runCli(['down', '--data-dir', data, '--timeout', '20'], 40_000);
    for (const u of ups) u.kill('SIGKILL');
    for (const p of seen)
      try {
        process.kill(-p, 'SIGKILL');
      } catch {}
    rmSync(dir, { recursive: true, force: true });
  });
  const up = () => {
    const out = openSync(join(dir, `up-${ups.length + 1}.log`), 'w');
    const p = spawn(process.execPath, [BIN, 'up', '-f', file, '--data-dir', data], {
      cwd: dir,
      // up adds a context to ~/.hexmesh/credentials: never the real user's.
      env: { ...process.env, HOME: cliTestHome() },
      stdio: ['ignore', out, out],
    });
    ups.push(p);
    return p;
  };
  /** The state file of the supervisor `by` (not one a killed supervisor left) once `ids` all pass. */
  const running = (by: ChildProcess, ids: string[]) =>
    until(`${ids.join(', ')} running and passing`, 90_000, () => {
      const st = readState(data);
      if (!st || st.phase !== 'running' || st.supervisorPid !== by.pid) return undefined;
      for (const p of pidsOf(st)) seen.add(p);
      const got = st.instances.map((i) => i.id).sort();
      const ok =
        JSON.stringify(got) === JSON.stringify(ids) &&
        st.instances.every((i) => i.health === 'passing' && i.appPid && i.sidecarPid);
      return ok ? st : undefined;
    }).catch((err: Error) => {
      // The supervisor's own account says why (its output goes to up-N.log).
      const log = join(dir, `up-${ups.indexOf(by) + 1}.log`);
      let tail = '';
      try {
        tail = readFileSync(log, 'utf8').slice(-3000);
      } catch {}
      let control = '';
      try {
        control = readFileSync(join(data, 'logs', 'control.log'), 'utf8').slice(-2000);
      } catch {}
      throw new Error(
        `${err.message}\nstate: ${JSON.stringify(readState(data))}\n${log}:\n${tail}\ncontrol.log:\n${control}`,
      );
    });
  const rollout = async (st: MeshState) => {
    const token = readCredentials(join(data, 'credentials.json')).contexts[0].token;
    const api = new ControlClient(st.controlUrl, { token });
    try {
      const get = async <T>(key: string) => JSON.parse((await api.kvGet(key)).body!.value) as T;
      return {
        status: await get<RolloutStatus>(rolloutKeys.status('default', 'reviews')),
        history: await get<HistoryEntry[]>(rolloutKeys.history('default', 'reviews')),
      };
    } finally {
      await api.destroy();
    }
  };
  const answer = async (st: MeshState) => {
    const i = st.instances.find((x) => x.service === 'reviews')!;
    return (await fetch(`http://127.0.0.1:${i.appPort}/`)).text();
  };
  return { data, up, running, rollout, answer };
}

test(
  'SIGKILL of the up supervisor: every child dies with it; the next up reaps leftovers and does not rerun a promoted rollout',
  { timeout: 240_000 },
  async (t) => {
    const { data, up, running, rollout, answer } = meshUnderTest(t, '[{ setWeight: 50 }]');

    // 1. The rollout promotes v2; then the supervisor is SIGKILLed.
    const first = up();
    await until('the rollout promoted', 90_000, async () => {
      const st = readState(data);
      return st?.phase === 'running' && (await rollout(st)).status.phase === 'Succeeded' ? true : undefined;
    });
    const st1 = await running(first, ['reviews-r1-1']);
    const pids1 = pidsOf(st1);
    assert.ok(pids1.length >= 4, `control plane, watchdog, app and sidecar: ${pids1.join(' ')}`);
    first.kill('SIGKILL');
    await until('every child of the killed supervisor to exit', 20_000, () =>
      pids1.some(alive) ? undefined : true,
    );

    // 2. A second up starts the promoted revision (v2) and does not roll it out again.
    const second = up();
    const st2 = await running(second, ['reviews-r1-1']);
    assert.equal(await answer(st2), 'v2');
    await new Promise((r) => setTimeout(r, 4000));
    const r2 = await rollout(st2);
    assert.equal(r2.status.phase, 'Succeeded', JSON.stringify(r2.status));
    assert.equal(r2.status.stableRevision, 1);
    assert.deepEqual(
      r2.history.map((h) => [h.revision, h.outcome]),
      [[1, 'Succeeded']],
    );
    assert.deepEqual(
      readState(data)!.instances.map((i) => i.id),
      ['reviews-r1-1'],
    );

    // 3. Supervisor and watchdog killed together: the children are orphaned until the next
    // up, which kills them (pid + start time) before it starts its own.
    const pids2 = pidsOf(st2).filter((p) => p !== st2.watchdogPid);
    process.kill(st2.watchdogPid!, 'SIGKILL');
    second.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 1000));
    assert.ok(pids2.some(alive), 'without the watchdog the children outlive the supervisor');
    const third = up();
    const st3 = await running(third, ['reviews-r1-1']);
    assert.deepEqual(
      pids2.filter(alive),
      [],
      'the previous run left nothing running that ps and down cannot see',
    );
    assert.equal(await answer(st3), 'v2');

    // 4. down, then up: still the promoted revision, still one history entry.
    third.kill('SIGTERM');
    await new Promise<void>((r) => third.once('exit', () => r()));
    const pids3 = pidsOf(st3);
    await until('every process of a clean stop to exit', 10_000, () =>
      pids3.some(alive) ? undefined : true,
    );
    const fourth = up();
    const st4 = await running(fourth, ['reviews-r1-1']);
    assert.equal(await answer(st4), 'v2');
    await new Promise((r) => setTimeout(r, 3000));
    const r4 = await rollout(st4);
    assert.deepEqual(
      r4.history.map((h) => [h.revision, h.outcome]),
      [[1, 'Succeeded']],
    );
  },
);

test(
  'supervisor SIGKILLed mid-rollout: the next up routes all traffic to the stable instances that run, marks the revision interrupted and rolls it out again',
  { timeout: 180_000 },
  async (t) => {
    const { data, up, running, rollout, answer } = meshUnderTest(t, '[{ setWeight: 50 }, { pause: {} }]');
    const first = up();
    const paused = await until('the canary paused at 50%', 90_000, async () => {
      const st = readState(data);
      if (st?.phase !== 'running' || st.supervisorPid !== first.pid) return undefined;
      const r = await rollout(st);
      return r.status.phase === 'Paused' && r.status.weight === 50 ? st : undefined;
    });
    const pids = pidsOf(paused);
    first.kill('SIGKILL');
    await until('the children of the killed supervisor to exit', 20_000, () =>
      pids.some(alive) ? undefined : true,
    );

    const second = up();
    // The stable revision (0: the mesh file's v1) starts; revision 1 is not resumed but rerun.
    const st = await running(second, ['reviews-1', 'reviews-r2-1']);
    assert.equal(await answer(st), 'v1');
    const r = await until('revision 2 paused at 50%', 60_000, async () => {
      const x = await rollout(st);
      return x.status.revision === 2 && x.status.phase === 'Paused' ? x : undefined;
    });
    assert.deepEqual(
      r.history.map((h) => [h.revision, h.outcome]),
      [
        [1, 'Failed'],
        [2, 'Progressing'],
      ],
    );
    assert.match(r.history[0].reason ?? '', /interrupted: the rollout controller stopped during revision 1/);
    assert.equal(r.status.stableRevision, 0);
    // The route's two Services select instances that run: v1 (stable) and revision 2.
    const token = readCredentials(join(data, 'credentials.json')).contexts[0].token;
    const api = new ControlClient(st.controlUrl, { token });
    t.after(() => api.destroy());
    const selector = async (name: string) =>
      (await api.getResource('Service', 'default', name)).body.spec as { selector: Record<string, string> };
    assert.deepEqual((await selector('reviews-stable')).selector, { version: 'v1' });
    assert.deepEqual((await selector('reviews-canary')).selector, { 'hexmesh.io/revision': '2' });
  },
);
