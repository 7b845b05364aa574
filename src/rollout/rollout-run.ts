/**
 * One revision's rollout, start to end (architecture flow 5): start the new revision's
 * instances beside the stable ones (never touching those), gate on health within the
 * progress deadline, walk the canary steps (weights, pauses, analysis) or the blue/green
 * preview, then promote (all traffic to the new revision, old instances drained and
 * destroyed) or roll back (all traffic to stable, new instances drained and destroyed).
 */
import type { Rollout } from '../config/resources.ts';
import type { InstanceSpec, Runtime } from '../runtime/runtime.ts';
import { MAX_UNMEASURED_INTERVALS, runAnalysis, unmeasuredVerdict } from './analysis.ts';
import { canarySteps, type Step } from './canary-steps.ts';
import { RevisionMetrics } from './revision-metrics.ts';
import {
  REVISION_LABEL,
  type CheckResult,
  type RolloutCommand,
  type RolloutStatus,
} from './rollout-status.ts';
import type { Selector, TrafficWriter } from './traffic.ts';
import { callWebhooks, type Webhook, type WebhookPayload } from './webhooks.ts';

export type Template = NonNullable<Rollout['spec']['template']>;
/** A Rollout of local processes (`spec.template`); a `workloadRef` one runs on Kubernetes. */
export type TemplateRollout = Rollout & { spec: { template: Template } };

export function hasTemplate(r: Rollout): r is TemplateRollout {
  return r.spec.template !== undefined;
}

/** A set of instances of one revision. */
export interface RevisionSet {
  revision: number;
  selector: Selector;
  ids: string[];
  template?: Template;
}

/** Commands for a running rollout, and a sleep that a command cuts short. */
export class Inbox {
  readonly #q: RolloutCommand[] = [];
  #wake: (() => void) | undefined;

  push(c: RolloutCommand): void {
    this.#q.push(c);
    this.#wake?.();
  }

  /** The next command, waiting at most `ms` (undefined: none came). */
  async next(ms: number): Promise<RolloutCommand | undefined> {
    if (!this.#q.length && ms > 0)
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, ms);
        this.#wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    this.#wake = undefined;
    return this.#q.shift();
  }
}

export interface RunContext {
  rollout: TemplateRollout;
  revision: number;
  stable: RevisionSet;
  runtime: Runtime;
  traffic: TrafficWriter;
  status: RolloutStatus;
  inbox: Inbox;
  /** Write `status` (the controller serialises and publishes it). */
  publish(): Promise<void>;
  /**
   * Run a write to the control plane (a routing change) until it succeeds while the
   * controller owns the lease: an unreachable control plane delays the step instead of
   * failing the rollout. Rejects only when the controller closes.
   */
  write(what: string, fn: () => Promise<void>): Promise<void>;
  /** How long proxies need to see a routing change before instances may go (default 1 s). */
  settleMs: number;
  /** Grace per process when draining instances. */
  graceMs?: number;
  /** Blue/green: keep the old set this long, then drain it (controller-owned timer). */
  retire(old: RevisionSet, delayMs: number): void;
  /**
   * Canary: run only as many new instances as the weight asks for, `ceil(weight% × replicas)`
   * and at least one (Argo Rollouts' canary scale), instead of all of them from the start.
   */
  scaleWithWeight?: boolean;
  /**
   * Canary: begin at this step, the new instances scaled and weighted as the steps before it
   * left them (a controller resuming a revision it finds half done; default 0).
   */
  fromStep?: number;
  now: () => number;
  /** What the run decided, for the controller's log (a status write may wait for the control plane). */
  log?: (line: string) => void;
}

export interface RunResult {
  outcome: 'Succeeded' | 'Failed' | 'RolledBack';
  reason?: string;
  /** The stable set afterwards. */
  stable: RevisionSet;
  /** False when the controller closed before the route went back to stable (left for its successor). */
  routed?: boolean;
}

class Stop extends Error {
  constructor(
    readonly outcome: 'Failed' | 'RolledBack',
    reason: string,
  ) {
    super(reason);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Run one revision; never throws (a failure is a RunResult with the reason). */
export async function runRevision(ctx: RunContext): Promise<RunResult> {
  const { rollout, revision, runtime, traffic, status } = ctx;
  const spec = rollout.spec;
  const ns = rollout.metadata.namespace;
  const t = spec.template;
  const canarySel: Selector = { [REVISION_LABEL]: String(revision) };
  const bg = spec.strategy.blueGreen;
  const canary = spec.strategy.canary;
  const analysisCfg = bg?.analysis ?? canary?.analysis;
  const hooks: Webhook[] = analysisCfg?.webhooks ?? [];
  const steps: Step[] = canary ? canarySteps(canary) : [];
  const previewName = bg ? (bg.previewService ?? `${spec.service}-preview`) : undefined;
  const ids = Array.from({ length: t.replicas }, (_, i) => `${spec.service}-r${revision}-${i + 1}`);
  const metrics = new RevisionMetrics();
  /** The new instances started so far (a prefix of `ids`). */
  let running: string[] = [];
  const wanted = (weight: number) =>
    ctx.scaleWithWeight
      ? Math.min(ids.length, Math.max(1, Math.ceil((weight * ids.length) / 100)))
      : ids.length;
  let paused = false;
  let promoteNow = false;
  let started = false;

  const set = async (patch: Partial<RolloutStatus>) => {
    Object.assign(status, patch, { updatedAt: ctx.now() });
    await ctx.publish();
  };
  const payload = (): WebhookPayload => ({
    name: rollout.metadata.name,
    namespace: ns,
    service: spec.service,
    revision,
    phase: status.phase,
    weight: status.weight,
  });
  const routing = (weight: number, stable: Selector = ctx.stable.selector) =>
    ctx.write(`route ${weight}% to revision ${revision}`, () =>
      traffic.apply({
        stable,
        canary: canarySel,
        weight,
        ...(previewName ? { preview: { name: previewName, selector: canarySel } } : {}),
      }),
    );
  const admins = () =>
    runtime
      .list()
      .filter((i) => ids.includes(i.id))
      .map((i) => `127.0.0.1:${i.adminPort}`);
  /** Start new instances up to `n` and wait, within the progress deadline, until they are healthy. */
  const scaleTo = async (n: number): Promise<void> => {
    if (n <= running.length) return;
    const more = ids.slice(running.length, n);
    started = true;
    running = ids.slice(0, n);
    await Promise.all(more.map((id) => runtime.startInstance(instanceSpec(rollout, id, revision))));
    await set({
      instances: { stable: ctx.stable.ids, canary: running },
      message: `waiting for ${more.length} new instance(s) to be healthy`,
    });
    try {
      await Promise.race([
        runtime.waitHealthy(more, spec.progressDeadline),
        // The deadline holds even if the runtime's wait overruns it.
        sleep(spec.progressDeadline + 2000).then(() => {
          throw new Error(`not healthy after ${spec.progressDeadline} ms`);
        }),
      ]);
    } catch (err) {
      throw new Stop('Failed', `progress deadline exceeded: ${(err as Error).message}`);
    }
  };

  /** Take pending commands; abort/undo stop the run. */
  const handle = (c: RolloutCommand | undefined): void => {
    if (!c) return;
    if (c.action === 'abort' || c.action === 'undo')
      throw new Stop('RolledBack', `${c.action === 'abort' ? 'aborted' : 'undone'} by the user`);
    if (c.action === 'pause') paused = true;
    if (c.action === 'resume') paused = false;
    if (c.action === 'promote') {
      paused = false;
      promoteNow = true;
    }
  };
  /** Wait `ms`, handling commands as they come; then wait out a pause. */
  const wait = async (ms: number): Promise<void> => {
    const until = ctx.now() + ms;
    for (let left = ms; left > 0 && !promoteNow; left = until - ctx.now()) handle(await ctx.inbox.next(left));
    await holdWhilePaused();
  };
  const holdWhilePaused = async (): Promise<void> => {
    if (!paused) return;
    const before = status.phase;
    await set({
      phase: 'Paused',
      message: `paused: hexmesh rollout promote ${ctx.rollout.metadata.name} finishes it now, hexmesh rollout resume ${ctx.rollout.metadata.name} goes on step by step`,
    });
    while (paused) handle(await ctx.inbox.next(60_000));
    await set({ phase: before, message: 'resumed' });
  };
  const gate = async (type: Webhook['type'], what: string): Promise<void> => {
    const res = await callWebhooks(hooks, type, payload());
    const bad = res.filter((r) => !r.pass);
    if (bad.length) throw new Stop('Failed', `${what}: ${bad.map((b) => b.message).join('; ')}`);
  };
  const analyse = async (a: NonNullable<typeof analysisCfg>, intervalMs: number): Promise<void> => {
    let unmeasured = 0;
    for (let i = 0; i < a.iterations && !promoteNow;) {
      await metrics.baseline(admins());
      await wait(intervalMs);
      if (promoteNow) return;
      const m = await metrics.measure(admins());
      if (m.unreachable.length > 0) {
        // Not judged: the interval is measured again (analysis.ts, MAX_UNMEASURED_INTERVALS).
        const reason = unmeasuredVerdict(m, ++unmeasured);
        if (reason) throw new Stop('Failed', reason);
        const line = `analysis: metrics of ${m.unreachable.join(', ')} unreadable (${unmeasured}/${MAX_UNMEASURED_INTERVALS} in a row); measuring again`;
        ctx.log?.(line);
        await set({ message: line });
        continue;
      }
      unmeasured = 0;
      i++;
      const run = await runAnalysis(a, m, payload(), ctx.now);
      const failedChecks = status.failedChecks + (run.pass ? 0 : 1);
      await set({ analysis: [...status.analysis, run].slice(-20), failedChecks, threshold: a.threshold });
      if (failedChecks >= a.threshold)
        throw new Stop('Failed', `analysis failed ${failedChecks} time(s): ${describeFailures(run.checks)}`);
    }
  };

  try {
    await set({ phase: 'Initializing', message: `starting revision ${revision}` });
    await gate('pre-rollout', 'pre-rollout webhook');
    // The route must be in place before any new instance can become an endpoint of the
    // service, or the service's plain balancing would send it a share at once.
    await routing(0);
    await sleep(ctx.settleMs);
    const from = Math.min(ctx.fromStep ?? 0, steps.length);
    const resumeWeight = steps.slice(0, from).reduce((w, s) => (s.kind === 'setWeight' ? s.weight : w), 0);
    await scaleTo(wanted(resumeWeight));
    await set({ phase: 'Progressing', message: 'new revision healthy' });
    if (resumeWeight > 0) {
      await routing(resumeWeight);
      await set({ weight: resumeWeight, message: `resumed at step ${from}: weight ${resumeWeight}%` });
    }

    if (canary) {
      for (let i = from; i < steps.length && !promoteNow; i++) {
        const s = steps[i];
        await set({ step: i });
        if (s.kind === 'setWeight') {
          await scaleTo(wanted(s.weight));
          await routing(s.weight);
          await set({ weight: s.weight, message: `weight ${s.weight}%` });
        } else if (s.kind === 'pause') {
          if (s.durationMs === undefined) {
            paused = true;
            await holdWhilePaused();
          } else await wait(s.durationMs);
        } else {
          await set({ message: 'analysing' });
          await analyse(s.analysis, canary.interval);
        }
        await holdWhilePaused();
      }
      await set({ step: steps.length });
    } else if (bg) {
      if (analysisCfg) {
        await set({ message: `analysing the preview (${previewName})` });
        await analyse(analysisCfg, bg.interval);
      }
      if (!bg.autoPromote && !promoteNow) {
        paused = true;
        await holdWhilePaused();
      }
    }

    for (;;) {
      const res = await callWebhooks(hooks, 'confirm-promotion', payload());
      if (res.every((r) => r.pass)) break;
      await set({ message: `waiting for promotion to be confirmed: ${describeFailures(res)}` });
      await wait(canary?.interval ?? bg?.interval ?? 10_000);
    }

    // Promotion: all traffic to the new revision, then it becomes the stable one.
    await scaleTo(ids.length);
    await set({ phase: 'Promoting', message: 'all traffic to the new revision' });
    const old = ctx.stable;
    const fresh: RevisionSet = { revision, selector: canarySel, ids, template: t };
    if (canary) {
      await routing(100);
      await set({ weight: 100 });
      await sleep(ctx.settleMs);
    }
    // Both Services now select the new revision; the canary's weight goes back to 0.
    await routing(0, canarySel);
    await set({
      phase: 'Finalising',
      weight: 100,
      stableRevision: revision,
      instances: { stable: ids, canary: [] },
    });
    if (bg) ctx.retire(old, bg.scaleDownDelay);
    else {
      await sleep(ctx.settleMs);
      await Promise.all(old.ids.map((id) => stopQuietly(runtime, id, true, ctx.graceMs)));
    }
    await callWebhooks(hooks, 'post-rollout', payload());
    await set({ phase: 'Succeeded', message: `revision ${revision} is stable` });
    return { outcome: 'Succeeded', stable: fresh };
  } catch (err) {
    const stop = err instanceof Stop ? err : new Stop('Failed', `internal error: ${(err as Error).message}`);
    ctx.log?.(`revision ${revision}: ${stop.outcome}: ${stop.message}; rolling back`);
    // Rollback: all traffic to stable first, then the new instances go. The new instances
    // stay until the route is written: the route never points at instances that are gone
    // (with the control plane down, proxies keep their last routes and still send the
    // canary its share). Only a controller that closes gives up; its successor finds a
    // non-terminal status and puts the route back to stable (RolloutController#resume).
    await set({ message: 'rolling back: all traffic to stable' });
    try {
      await routing(0);
    } catch {
      return { outcome: stop.outcome, reason: stop.message, stable: ctx.stable, routed: false };
    }
    await set({ weight: 0, message: 'rolling back' });
    if (started) {
      await sleep(ctx.settleMs);
      const healthy = status.phase !== 'Initializing';
      await Promise.all(running.map((id) => stopQuietly(runtime, id, healthy, ctx.graceMs)));
    }
    await callWebhooks(hooks, 'rollback', payload());
    await set({
      phase: stop.outcome,
      reason: stop.message,
      message: `revision ${revision} ${stop.outcome === 'Failed' ? 'failed' : 'rolled back'}; stable is revision ${ctx.stable.revision}`,
      instances: { stable: ctx.stable.ids, canary: [] },
    });
    return { outcome: stop.outcome, reason: stop.message, stable: ctx.stable };
  }
}

function describeFailures(checks: readonly CheckResult[]): string {
  return checks
    .filter((c) => !c.pass)
    .map((c) => c.message ?? c.name)
    .join('; ');
}

async function stopQuietly(runtime: Runtime, id: string, drain: boolean, graceMs?: number): Promise<void> {
  try {
    await runtime.stopInstance(id, { drain, ...(graceMs !== undefined ? { graceMs } : {}) });
  } catch {}
}

/** The runtime spec of one new instance: the template, plus the revision label. */
export function instanceSpec(r: TemplateRollout, id: string, revision: number): InstanceSpec {
  const t = r.spec.template;
  return {
    id,
    service: r.spec.service,
    namespace: r.metadata.namespace,
    labels: { ...t.labels, [REVISION_LABEL]: String(revision) },
    command: t.command,
    args: t.args,
    env: t.env,
    cwd: t.cwd ?? process.cwd(),
    port: t.port,
    ...(t.healthCheck ? { healthCheck: t.healthCheck } : {}),
  };
}
