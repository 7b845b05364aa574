/**
 * Rollouts on a real local runtime: an in-process control plane with API auth enforced, real
 * sidecar + app processes (test/rollout/fixtures/flaky-app.mjs, errors by env), a client
 * sidecar the bounded load generator sends through, and the RolloutController driving it all
 * — set up as `hexmesh up` does: the runtime and the controller use an admin token, every
 * sidecar (the new revisions' too) a join token of its own identity, so traffic is mTLS.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startCp } from '../control/helpers.ts';
import { ControlClient } from '../../src/cli/client/control-client.ts';
import { JoinTokenIssuer } from '../../src/runtime/join-token-issuer.ts';
import { LocalProcessRuntime } from '../../src/runtime/local-process-runtime.ts';
import { RolloutController } from '../../src/rollout/rollout-controller.ts';
import { rolloutKeys, type RolloutStatus } from '../../src/rollout/rollout-status.ts';
import { FLAKY_APP as APP, flakyAppSpec as appSpec, until } from '../support/local-runtime.ts';

interface Tally {
  total: number;
  byBody: Map<string, number>;
  failed: number;
  /** Non-200 answers that were not the app's own injected errors (proxy-made: lost requests). */
  lost: string[];
  connErrors: string[];
  /** Failures while the canary weight was w (the highest weight seen so far). */
  maxWeight: number;
}

class Load {
  readonly tally: Tally = { total: 0, byBody: new Map(), failed: 0, lost: [], connErrors: [], maxWeight: 0 };
  readonly #agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  #stop = false;
  #done: Promise<void>;

  constructor(port: number, deadlineMs: number, maxRequests = 200_000) {
    const until = Date.now() + deadlineMs;
    const worker = async () => {
      while (!this.#stop && Date.now() < until && this.tally.total < maxRequests) await this.#one(port);
    };
    this.#done = Promise.all(Array.from({ length: 6 }, worker)).then(() => {});
  }

  #one(port: number): Promise<void> {
    return new Promise((resolve) => {
      const req = http.request(
        { host: '127.0.0.1', port, path: '/', headers: { host: 'reviews' }, agent: this.#agent },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => {
            this.tally.total++;
            if (res.statusCode === 200) this.tally.byBody.set(body, (this.tally.byBody.get(body) ?? 0) + 1);
            else {
              this.tally.failed++;
              if (body !== 'injected error') this.tally.lost.push(`${res.statusCode} ${body.slice(0, 120)}`);
            }
            resolve();
          });
        },
      );
      req.on('error', (e) => {
        this.tally.connErrors.push(e.message);
        resolve();
      });
      req.end();
    });
  }

  /** Counts since the call, by body. */
  async stop(): Promise<Tally> {
    this.#stop = true;
    await this.#done;
    this.#agent.destroy();
    return this.tally;
  }
}

/** A control plane, `reviews` v1 (2 instances, ERROR_RATE 0), a client sidecar, a controller. */
async function setup(t: import('node:test').TestContext) {
  const cp = await startCp({ discovery: true, auth: { mode: 'enforce' } });
  const { token } = await cp.cp.tokens.create({ name: 'rollout-test', role: 'admin' });
  const auth = { authorization: `Bearer ${token}` };
  const api = new ControlClient(cp.url, { token });
  const joinTokens = new JoinTokenIssuer(api, { ttlMs: 3_600_000 });
  const dir = mkdtempSync(join(tmpdir(), 'hexmesh-rollout-'));
  const runtime = new LocalProcessRuntime({
    controlUrl: cp.url,
    token,
    joinToken: joinTokens.get,
    logDir: dir,
    healthPollMs: 250,
    deregisterSettleMs: 1000,
  });
  const controller = new RolloutController({
    controlUrl: cp.url,
    token,
    runtime,
    settleMs: 1000,
    graceMs: 5000,
    leaseTtlMs: 3000,
  });
  t.after(async () => {
    await controller.close();
    await runtime.close();
    await joinTokens.revokeAll();
    await api.destroy();
    await cp.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const stable = ['reviews-1', 'reviews-2'];
  await Promise.all([
    ...stable.map((id) =>
      runtime.startInstance(appSpec(id, 'reviews', { VERSION: 'v1' }, { version: 'v1' })),
    ),
    runtime.startInstance(appSpec('client-1', 'client', { VERSION: 'c' }, { version: 'c' })),
  ]);
  await runtime.waitHealthy([...stable, 'client-1'], 40_000);
  await controller.start();
  const clientPort = runtime.list().find((i) => i.id === 'client-1')!.outboundPort;
  // The client's sidecar learns reviews lazily: wait until it answers through the mesh.
  await until('reviews through the client sidecar', 20_000, async () => {
    const l = new Load(clientPort, 300, 5);
    const r = await l.stop();
    return r.byBody.get('v1') ? true : undefined;
  });
  const apply = async (doc: unknown) => {
    const r = await fetch(`${cp.url}/v1/apply`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth },
      body: JSON.stringify([doc]),
    });
    assert.equal(r.status, 200, await r.text());
  };
  const status = async (): Promise<RolloutStatus | undefined> => {
    const r = await fetch(`${cp.url}/v1/kv/${rolloutKeys.status('default', 'reviews')}`, { headers: auth });
    if (r.status !== 200) return undefined;
    return JSON.parse(((await r.json()) as { value: string }).value) as RolloutStatus;
  };
  const command = async (action: string) => {
    const r = await fetch(`${cp.url}/v1/kv/${rolloutKeys.command('default', 'reviews')}`, {
      method: 'PUT',
      headers: auth,
      body: JSON.stringify({ action, id: `${action}-${Date.now()}`, at: Date.now() }),
    });
    assert.equal(r.status, 200);
  };
  const finalPhase = (phases: string[], ms: number) =>
    until(`phase ${phases.join('|')}`, ms, async () => {
      const s = await status();
      return s && phases.includes(s.phase) ? s : undefined;
    });
  return { cp, auth, runtime, controller, clientPort, apply, status, command, finalPhase, stable };
}

function rollout(env: Record<string, string>, strategy: unknown, extra: Record<string, unknown> = {}) {
  return {
    apiVersion: 'hexmesh.io/v1alpha1',
    kind: 'Rollout',
    metadata: { name: 'reviews' },
    spec: {
      service: 'reviews',
      template: {
        command: process.execPath,
        args: [APP],
        env,
        labels: { version: 'v2' },
        replicas: 1,
        healthCheck: { type: 'http', path: '/healthz' },
      },
      strategy,
      progressDeadline: '30s',
      ...extra,
    },
  };
}

const reviewsIds = (rt: LocalProcessRuntime) =>
  rt
    .list()
    .filter((i) => i.service === 'reviews')
    .map((i) => i.id)
    .sort();

test(
  'a canary returning 5% errors is rolled back by analysis; failures stay within what analysis allowed',
  { timeout: 90_000 },
  async (t) => {
    const m = await setup(t);
    const load = new Load(m.clientPort, 60_000);
    let maxWeight = 0;
    const watch = setInterval(async () => {
      const s = await m.status().catch(() => undefined);
      if (s) maxWeight = Math.max(maxWeight, s.weight);
    }, 100);
    t.after(() => clearInterval(watch));
    await m.apply(
      rollout(
        { VERSION: 'v2', ERROR_RATE: '0.05' },
        {
          canary: {
            stepWeight: 20,
            maxWeight: 60,
            interval: '1s',
            analysis: { successRate: { min: 99 }, minRequests: 10, threshold: 1, iterations: 2 },
          },
        },
      ),
    );
    const s = await m.finalPhase(['Failed', 'Succeeded', 'RolledBack'], 60_000);
    clearInterval(watch);
    // After the rollback every request goes to v1 again.
    const after = new Load(m.clientPort, 1500);
    const tallyAfter = await after.stop();
    const tally = await load.stop();
    assert.equal(s.phase, 'Failed', JSON.stringify(s));
    assert.match(s.reason ?? '', /success rate/);
    assert.ok(s.analysis.some((a) => !a.pass));
    assert.deepEqual(reviewsIds(m.runtime), ['reviews-1', 'reviews-2'], 'canary destroyed, stable untouched');
    assert.deepEqual(tally.connErrors, []);
    assert.deepEqual(tally.lost, [], 'every failure is the canary app’s own');
    assert.ok(tally.failed > 0, 'the canary did serve errors');
    // At most the canary's error rate times the largest share it ever had.
    const allowed = 0.05 * (Math.max(maxWeight, s.weight) / 100);
    assert.ok(tally.failed / tally.total <= allowed + 0.005, `${tally.failed}/${tally.total} > ${allowed}`);
    assert.equal(tallyAfter.failed, 0);
    assert.deepEqual([...tallyAfter.byBody.keys()], ['v1']);
  },
);

test(
  'a healthy canary is promoted with no request lost during the instance swaps',
  { timeout: 90_000 },
  async (t) => {
    const m = await setup(t);
    const load = new Load(m.clientPort, 60_000);
    await m.apply(
      rollout(
        { VERSION: 'v2' },
        {
          canary: {
            steps: [{ setWeight: 30 }, { analysis: {} }, { setWeight: 70 }],
            interval: '1s',
            analysis: { successRate: { min: 99 }, p99: { max: '500ms' }, minRequests: 5 },
          },
        },
      ),
    );
    const s = await m.finalPhase(['Failed', 'Succeeded', 'RolledBack'], 60_000);
    const after = new Load(m.clientPort, 1500);
    const tallyAfter = await after.stop();
    const tally = await load.stop();
    assert.equal(s.phase, 'Succeeded', JSON.stringify(s));
    assert.equal(s.stableRevision, 1);
    assert.deepEqual(reviewsIds(m.runtime), ['reviews-r1-1'], 'old instances drained and destroyed');
    assert.deepEqual(tally.connErrors, []);
    assert.equal(tally.failed, 0, tally.lost.join('\n'));
    assert.ok((tally.byBody.get('v2') ?? 0) > 0 && (tally.byBody.get('v1') ?? 0) > 0);
    assert.deepEqual([...tallyAfter.byBody.keys()], ['v2']);
    // The new revision's sidecar got its own join token and certificate before any traffic:
    // every request of the load, to either revision, went over mutual TLS.
    const client = m.runtime.list().find((i) => i.id === 'client-1')!;
    const metrics = await (await fetch(`http://127.0.0.1:${client.adminPort}/metrics`)).text();
    const toReviews = metrics
      .split('\n')
      .filter((l) =>
        l.startsWith(
          'hexmesh_requests_total{direction="outbound",src_service="client",dst_service="reviews"',
        ),
      );
    assert.ok(toReviews.length > 0, 'no outbound series to reviews');
    for (const l of toReviews) assert.match(l, /tls="true"/);
    const h = await fetch(`${m.cp.url}/v1/kv/${rolloutKeys.history('default', 'reviews')}`, {
      headers: m.auth,
    });
    const history = JSON.parse(((await h.json()) as { value: string }).value) as {
      revision: number;
      outcome: string;
    }[];
    assert.deepEqual(
      history.map((e) => [e.revision, e.outcome]),
      [[1, 'Succeeded']],
    );
  },
);

test(
  'blue/green switches all traffic at once and undo switches back instantly, under load',
  { timeout: 90_000 },
  async (t) => {
    const m = await setup(t);
    const load = new Load(m.clientPort, 60_000);
    await m.apply(rollout({ VERSION: 'v2' }, { blueGreen: { autoPromote: true, scaleDownDelay: '30s' } }));
    const s = await m.finalPhase(['Failed', 'Succeeded'], 40_000);
    assert.equal(s.phase, 'Succeeded', JSON.stringify(s));
    // The old set is kept for scaleDownDelay.
    assert.deepEqual(reviewsIds(m.runtime), ['reviews-1', 'reviews-2', 'reviews-r1-1']);
    await until('all traffic on v2', 10_000, async () => {
      const r = await new Load(m.clientPort, 500).stop();
      return r.byBody.size === 1 && r.byBody.has('v2') ? true : undefined;
    });
    await m.command('undo');
    const u = await m.finalPhase(['RolledBack'], 10_000);
    assert.equal(u.stableRevision, 0);
    await until('all traffic back on v1', 10_000, async () => {
      const r = await new Load(m.clientPort, 500).stop();
      return r.byBody.size === 1 && r.byBody.has('v1') ? true : undefined;
    });
    const tally = await load.stop();
    assert.deepEqual(tally.connErrors, []);
    assert.equal(tally.failed, 0, tally.lost.join('\n'));
    assert.ok((tally.byBody.get('v2') ?? 0) > 0);
  },
);

test(
  'a revision that never becomes healthy fails after its progress deadline; stable untouched',
  { timeout: 90_000 },
  async (t) => {
    const m = await setup(t);
    const load = new Load(m.clientPort, 60_000);
    await m.apply(
      rollout(
        { VERSION: 'v2', HEALTHY: '0' },
        { canary: { stepWeight: 50, maxWeight: 50, interval: '1s' } },
        { progressDeadline: '3s' },
      ),
    );
    const s = await m.finalPhase(['Failed', 'Succeeded'], 30_000);
    const tally = await load.stop();
    assert.equal(s.phase, 'Failed');
    assert.match(s.reason ?? '', /progress deadline/);
    assert.equal(s.weight, 0);
    assert.deepEqual(reviewsIds(m.runtime), ['reviews-1', 'reviews-2']);
    assert.deepEqual(tally.connErrors, []);
    assert.equal(tally.failed, 0);
    assert.deepEqual([...tally.byBody.keys()], ['v1']);
  },
);

test(
  "a canary whose sidecar stalls through an analysis interval is measured again, not rolled back as 'no traffic'",
  { timeout: 90_000 },
  async (t) => {
    const m = await setup(t);
    const load = new Load(m.clientPort, 60_000);
    const messages = new Set<string>();
    const watch = setInterval(async () => {
      const s = await m.status().catch(() => undefined);
      if (s) messages.add(s.message);
    }, 100);
    t.after(() => clearInterval(watch));
    await m.apply(
      rollout(
        { VERSION: 'v2' },
        {
          canary: {
            steps: [{ setWeight: 50 }, { analysis: {} }],
            interval: '1s',
            analysis: { successRate: { min: 90 }, minRequests: 1, threshold: 1, iterations: 3 },
          },
        },
      ),
    );
    await until('the canary analysed', 40_000, async () => {
      const s = await m.status();
      return s?.message === 'analysing' ? s : undefined;
    });
    // The canary's sidecar stops answering (a stalled host) for longer than an interval plus the
    // 2 s scrape timeout: that interval's figures are missing, which is not "no traffic".
    const pid = m.runtime.list().find((i) => i.id.startsWith('reviews-r'))?.sidecarPid;
    assert.ok(pid, 'the canary has a sidecar');
    process.kill(pid, 'SIGSTOP');
    t.after(() => {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {}
    });
    await new Promise((r) => setTimeout(r, 3500));
    process.kill(pid, 'SIGCONT');
    const s = await m.finalPhase(['Failed', 'Succeeded', 'RolledBack'], 60_000);
    clearInterval(watch);
    await load.stop();
    assert.equal(s.phase, 'Succeeded', JSON.stringify(s));
    assert.ok(
      [...messages].some((msg) =>
        /^analysis: metrics of .* unreadable \(1\/4 in a row\); measuring again$/.test(msg),
      ),
      [...messages].join('\n'),
    );
    // Only measured intervals are judged and recorded: none of them counts the stall as no traffic.
    assert.ok(s.analysis.length > 0);
    assert.ok(
      s.analysis.every((a) => a.pass && a.requests > 0),
      JSON.stringify(s.analysis),
    );
  },
);
