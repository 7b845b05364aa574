/**
 * The rollout controller: follows Rollout resources and rollout commands through blocking
 * queries on the control plane API, and runs each new revision (rollout-run.ts) on a
 * Runtime. It is hosted by the process that owns the runtime (`hexmesh up`'s supervisor,
 * src/runtime/mesh-runner.ts) and acts only while it holds the owner lease
 * (owner-lease.ts). Status and history go to the KV store (rollout-status.ts).
 *
 * A revision is a change of `spec.template`: the controller numbers them 1, 2, …; the
 * instances found running when a service is first rolled out are revision 0, selected by
 * their `version` label (the new template must carry another version).
 *
 * Crash safety (docs/rollouts.md): the persisted status and history are the controller's
 * intent. A controller that starts (or takes the lease over) resumes from them before it
 * acts on a Rollout (#resume): a template whose revision already ended is not run again, a
 * revision left half done by a controller that died is marked Failed and its route put back
 * to the stable instances that exist. Every routing write is retried until the control
 * plane takes it (#write), so an unreachable control plane delays a step, and a rollback
 * removes the new instances only once the route no longer sends them traffic.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { blockingQuery } from '../cli/client/blocking-query.ts';
import { ControlClient, type StoredResource } from '../cli/client/control-client.ts';
import { rolloutSchema, type Rollout } from '../config/resources.ts';
import { HexmeshError } from '../errors/hexmesh-error.ts';
import type { Runtime } from '../runtime/runtime.ts';
import { OwnerLease } from './owner-lease.ts';
import { Inbox, hasTemplate, runRevision, type RevisionSet, type TemplateRollout } from './rollout-run.ts';
import {
  REVISION_LABEL,
  TERMINAL_PHASES,
  rolloutKeys,
  templateChanges,
  type HistoryEntry,
  type RolloutCommand,
  type RolloutStatus,
} from './rollout-status.ts';
import { RolloutTraffic } from './traffic.ts';

export interface RolloutControllerOptions {
  controlUrl: string;
  /**
   * API token for every call of the controller (rollouts, KV status and commands, routing
   * resources, the owner lease): the host's own credential, e.g. `hexmesh up`'s bootstrap
   * admin token. Needed when the control plane enforces auth.
   */
  token?: string;
  runtime: Runtime;
  /** Owner lease TTL (default 10 s). */
  leaseTtlMs?: number;
  /** Time for proxies to see a routing change before instances go (default 1 s). */
  settleMs?: number;
  graceMs?: number;
  log?: (line: string) => void;
  now?: () => number;
}

interface Tracked {
  key: string;
  stable: RevisionSet | undefined;
  retired: (RevisionSet & { timer: NodeJS.Timeout; delayMs: number }) | undefined;
  history: HistoryEntry[];
  /** JSON of the template last acted on. */
  handled: string | undefined;
  /** The persisted status and history were read (#resume) since this controller started. */
  resumed: boolean;
  run: { inbox: Inbox; done: Promise<void> } | undefined;
  status: RolloutStatus | undefined;
  /** Serialises the work of one rollout (spec changes and commands). */
  queue: Promise<void>;
}

export class RolloutController {
  readonly #o: RolloutControllerOptions;
  readonly #client: ControlClient;
  readonly #lease: OwnerLease;
  readonly #abort = new AbortController();
  readonly #tracked = new Map<string, Tracked>();
  readonly #seenCommands = new Set<string>();
  readonly #now: () => number;
  #loops: Promise<void>[] = [];
  #closed = false;

  constructor(o: RolloutControllerOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
    this.#client = new ControlClient(o.controlUrl, o.token ? { token: o.token } : {});
    this.#lease = new OwnerLease(this.#client, {
      id: `rollout-controller:${process.pid}:${randomUUID().slice(0, 8)}`,
      ...(o.leaseTtlMs !== undefined ? { ttlMs: o.leaseTtlMs } : {}),
      onChange: (held) => {
        this.#log(held ? 'holding the owner lease' : 'lost the owner lease');
        if (held) void this.#resync();
      },
    });
  }

  async start(): Promise<void> {
    await this.#lease.start();
    const signal = this.#abort.signal;
    this.#loops = [
      (async () => {
        for await (const { body } of blockingQuery(
          (b) => this.#client.listResources('Rollout', undefined, b),
          {
            signal,
            waitMs: 30_000,
          },
        ))
          for (const r of body) this.#onResource(r);
      })(),
      (async () => {
        for await (const { body } of blockingQuery((b) => this.#client.kvList(rolloutKeys.prefix, b), {
          signal,
          waitMs: 30_000,
        }))
          for (const e of body)
            if (e.key.endsWith('/command')) this.#onCommand(e.key, e.value, e.modRevision);
      })(),
    ];
  }

  /** The current status of every rollout this controller knows. */
  statuses(): RolloutStatus[] {
    return [...this.#tracked.values()].flatMap((t) => (t.status ? [t.status] : []));
  }

  /** Resolves when the named rollout has nothing running (tests, shutdown). */
  async idle(namespace: string, name: string): Promise<void> {
    await this.#tracked.get(`${namespace}/${name}`)?.queue;
  }

  #track(ns: string, name: string): Tracked {
    const key = `${ns}/${name}`;
    let t = this.#tracked.get(key);
    if (!t) {
      t = {
        key,
        stable: undefined,
        retired: undefined,
        history: [],
        handled: undefined,
        resumed: false,
        run: undefined,
        status: undefined,
        queue: Promise.resolve(),
      };
      this.#tracked.set(key, t);
    }
    return t;
  }

  #enqueue(t: Tracked, work: () => Promise<void>): void {
    t.queue = t.queue.then(work).catch((err) => this.#log(`${t.key}: ${(err as Error).message}`));
  }

  #onResource(doc: StoredResource): void {
    if (this.#closed || !this.#lease.held) return;
    const parsed = rolloutSchema.safeParse(stripServerFields(doc));
    // A workloadRef Rollout is the Kubernetes controller's (deployment-rollouts.ts).
    if (!parsed.success || !hasTemplate(parsed.data)) return;
    const r = parsed.data;
    const t = this.#track(r.metadata.namespace, r.metadata.name);
    const json = JSON.stringify(r.spec.template);
    if (json === t.handled) return;
    t.handled = json;
    if (!t.resumed) {
      t.resumed = true;
      this.#enqueue(t, () => this.#resume(t, r, json));
      return;
    }
    // A newer template supersedes a rollout in progress: roll that one back first.
    t.run?.inbox.push({ action: 'abort', id: 'superseded', at: this.#now() });
    this.#enqueue(t, () => this.#rollout(t, r));
  }

  /** The lease was (re)gained: read every Rollout now (the blocking query may wait), publish every status. */
  async #resync(): Promise<void> {
    for (const t of this.#tracked.values()) void this.#publish(t);
    try {
      for (const r of (await this.#client.listResources('Rollout')).body) this.#onResource(r);
    } catch {}
  }

  /**
   * First sight of a Rollout in this controller's life: pick up what the persisted status
   * and history say. The stable set is the status' stable revision if its instances run
   * here (`hexmesh up` starts a promoted revision's instances, mesh-runner.ts), else what
   * runs now; a revision that never ended (its controller died) is marked Failed and the
   * route goes back to stable; the template is run only if no revision ran it to the end.
   */
  async #resume(t: Tracked, r: TemplateRollout, json: string): Promise<void> {
    const ns = r.metadata.namespace;
    await this.#loadHistory(t, ns, r.metadata.name);
    let status: RolloutStatus | undefined;
    try {
      const e = (await this.#client.kvGet(rolloutKeys.status(ns, r.metadata.name))).body;
      if (e) status = JSON.parse(e.value) as RolloutStatus;
    } catch {}
    const last = t.history.at(-1);
    if (!status || !last) return this.#rollout(t, r);
    t.status = status;
    t.stable = this.#stableSet(r, status.stableRevision, t.history);
    const traffic = new RolloutTraffic(this.#client, ns, r.spec.service);
    const stable = t.stable;
    // Whatever the route said before, it now sends everything to instances that run.
    await this.#write(t, `route all traffic to revision ${stable.revision}`, () =>
      traffic.apply({ stable: stable.selector, canary: stable.selector, weight: 0 }),
    );
    if (last.outcome === 'Progressing') {
      const reason = `interrupted: the rollout controller stopped during revision ${last.revision}`;
      Object.assign(last, { outcome: 'Failed', reason, finishedAt: this.#now() });
      this.#log(`${t.key}: ${reason}; traffic back on revision ${stable.revision}`);
    }
    if (!TERMINAL_PHASES.has(status.phase))
      Object.assign(status, {
        phase: 'Failed',
        reason: last.reason ?? status.reason,
        message: `revision ${last.revision} failed; stable is revision ${stable.revision}`,
        weight: 0,
      });
    Object.assign(status, {
      stableRevision: stable.revision,
      instances: { stable: stable.ids, canary: [] },
      updatedAt: this.#now(),
    });
    await this.#publish(t);
    // A template some revision already ran to its end is not run again (after a restart
    // as within one run); one that was interrupted is.
    const ran = lastOf(t.history, (h) => JSON.stringify(h.template) === json);
    if (ran && !(ran.outcome === 'Failed' && ran.reason?.startsWith('interrupted'))) return;
    await this.#rollout(t, r);
  }

  /** The set of `revision` running in the runtime, or (none runs) what runs now as revision 0. */
  #stableSet(r: Rollout, revision: number, history: readonly HistoryEntry[]): RevisionSet {
    if (revision > 0) {
      const selector = { [REVISION_LABEL]: String(revision) };
      const ids = this.#running(r)
        .filter((i) => i.labels?.[REVISION_LABEL] === String(revision))
        .map((i) => i.id);
      const template = lastOf(history, (h) => h.revision === revision)?.template;
      if (ids.length) return { revision, selector, ids, ...(template ? { template } : {}) };
      this.#log(
        `${r.metadata.namespace}/${r.metadata.name}: no instance of the stable revision ${revision} runs; taking the running ones as revision 0`,
      );
    }
    return this.#adopt(r);
  }

  #running(r: Rollout) {
    return this.#o.runtime
      .list()
      .filter(
        (i) => i.service === r.spec.service && i.namespace === r.metadata.namespace && i.state !== 'stopped',
      );
  }

  /**
   * See RunContext.write: retry with backoff (250 ms doubling to 5 s) while the control
   * plane is unreachable or the lease is not held; give up only once the controller closes.
   */
  async #write(t: Tracked, what: string, fn: () => Promise<void>): Promise<void> {
    let failing: string | undefined;
    for (let delay = 250; ; delay = Math.min(delay * 2, 5000)) {
      if (this.#closed && failing !== undefined)
        throw new HexmeshError('HEXMESH_ERR_DRAINING', `${t.key}: ${what}: not done (${failing}); closing`);
      if (this.#lease.held) {
        try {
          await fn();
          if (failing !== undefined) this.#log(`${t.key}: ${what}: done`);
          return;
        } catch (err) {
          failing = (err as Error).message;
        }
      } else failing = 'the owner lease is not held';
      if (delay === 250) this.#log(`${t.key}: ${what}: ${failing}; retrying`);
      try {
        await sleep(delay, undefined, { signal: this.#abort.signal });
      } catch {}
    }
  }

  #onCommand(key: string, value: string, modRevision: number): void {
    if (this.#closed || !this.#lease.held) return;
    let c: RolloutCommand;
    try {
      c = JSON.parse(value) as RolloutCommand;
    } catch {
      return;
    }
    if (this.#seenCommands.has(c.id)) return;
    this.#seenCommands.add(c.id);
    void this.#client.kvDelete(key, { cas: modRevision }).catch(() => {});
    const [, ns, name] = key.split('/');
    const t = this.#track(ns, name);
    if (t.run) t.run.inbox.push(c);
    else if (c.action === 'undo') this.#enqueue(t, () => this.#undo(t, c.toRevision));
  }

  async #rollout(t: Tracked, r: TemplateRollout): Promise<void> {
    const ns = r.metadata.namespace;
    const traffic = new RolloutTraffic(this.#client, ns, r.spec.service);
    await this.#loadHistory(t, ns, r.metadata.name);
    const stable = t.stable ?? this.#adopt(r);
    t.stable = stable;
    const revision = Math.max(0, ...t.history.map((h) => h.revision)) + 1;
    const prevTemplate = lastOf(t.history, (h) => h.revision === stable.revision)?.template;
    const entry: HistoryEntry = {
      revision,
      template: r.spec.template,
      changes: prevTemplate
        ? templateChanges(prevTemplate, r.spec.template)
        : [`first revision (replaces ${stable.ids.length} instance(s) of revision ${stable.revision})`],
      startedAt: this.#now(),
      outcome: 'Progressing',
    };
    t.history.push(entry);
    const status: RolloutStatus = {
      namespace: ns,
      name: r.metadata.name,
      service: r.spec.service,
      strategy: r.spec.strategy.canary ? 'canary' : 'blueGreen',
      phase: 'Initializing',
      revision,
      stableRevision: stable.revision,
      step: 0,
      steps: 0,
      weight: 0,
      failedChecks: 0,
      threshold: (r.spec.strategy.canary?.analysis ?? r.spec.strategy.blueGreen?.analysis)?.threshold ?? 1,
      analysis: [],
      message: '',
      instances: { stable: stable.ids, canary: [] },
      startedAt: this.#now(),
      updatedAt: this.#now(),
    };
    status.analysisConfigured = Boolean(
      r.spec.strategy.canary?.analysis ?? r.spec.strategy.blueGreen?.analysis,
    );
    if (r.spec.strategy.canary) {
      const { canarySteps } = await import('./canary-steps.ts');
      const steps = canarySteps(r.spec.strategy.canary);
      status.steps = steps.length;
      status.analysisConfigured ||= steps.some((s) => s.kind === 'analysis');
    }
    t.status = status;
    const vStable = stable.selector.version;
    if (stable.revision === 0 && vStable !== undefined && r.spec.template.labels.version === vStable) {
      Object.assign(status, {
        phase: 'Failed',
        reason: `the new template must carry another version label than the running instances (${vStable})`,
      });
      entry.outcome = 'Failed';
      entry.reason = status.reason;
      entry.finishedAt = this.#now();
      await this.#publish(t);
      return;
    }
    await this.#publish(t);
    const inbox = new Inbox();
    let done!: () => void;
    t.run = { inbox, done: new Promise<void>((r2) => (done = r2)) };
    try {
      const res = await runRevision({
        rollout: r,
        revision,
        stable,
        runtime: this.#o.runtime,
        traffic,
        status,
        inbox,
        publish: () => this.#publish(t),
        write: (what, fn) => this.#write(t, what, fn),
        log: (line) => this.#log(`${t.key}: ${line}`),
        settleMs: this.#o.settleMs ?? 1000,
        ...(this.#o.graceMs !== undefined ? { graceMs: this.#o.graceMs } : {}),
        retire: (old, delayMs) => this.#retire(t, old, delayMs),
        now: this.#now,
      });
      t.stable = res.stable;
      // Not routed back: the entry stays Progressing, for the next controller to resume.
      if (res.routed !== false) entry.outcome = res.outcome;
      if (res.reason) entry.reason = res.reason;
    } finally {
      entry.finishedAt = this.#now();
      t.run = undefined;
      done();
      await this.#publish(t);
    }
  }

  /** Revision 0: the service's instances running now, selected by their version. */
  #adopt(r: Rollout): RevisionSet {
    const running = this.#running(r).filter((i) => i.labels?.[REVISION_LABEL] === undefined);
    const version = running.find((i) => i.version !== undefined)?.version;
    return { revision: 0, selector: version !== undefined ? { version } : {}, ids: running.map((i) => i.id) };
  }

  /** Blue/green: keep the old set for `delayMs` (instant undo), then drain it. */
  #retire(t: Tracked, old: RevisionSet, delayMs: number): void {
    if (t.retired) this.#dropRetired(t);
    const timer = setTimeout(() => this.#enqueue(t, () => this.#dropRetired(t)), delayMs);
    timer.unref();
    t.retired = { ...old, timer, delayMs };
  }

  async #dropRetired(t: Tracked): Promise<void> {
    const r = t.retired;
    if (!r) return;
    t.retired = undefined;
    clearTimeout(r.timer);
    await Promise.all(
      r.ids.map((id) =>
        this.#o.runtime
          .stopInstance(id, {
            drain: true,
            ...(this.#o.graceMs !== undefined ? { graceMs: this.#o.graceMs } : {}),
          })
          .catch(() => {}),
      ),
    );
  }

  /**
   * Back to a previous revision: instantly when its instances are still kept (blue/green
   * within scaleDownDelay), else as a new revision from its recorded template.
   */
  async #undo(t: Tracked, toRevision?: number): Promise<void> {
    const st = t.status;
    const cur = t.stable;
    if (!st || !cur) return;
    const target =
      toRevision ??
      t.history.filter((h) => h.outcome === 'Succeeded' && h.revision < cur.revision).at(-1)?.revision ??
      0;
    const current = lastOf(t.history, (h) => h.revision === cur.revision);
    if (target === cur.revision) {
      Object.assign(st, { message: `undo: revision ${target} is already stable`, updatedAt: this.#now() });
      await this.#publish(t);
      return;
    }
    if (t.retired && t.retired.revision === target) {
      const back = t.retired;
      clearTimeout(back.timer);
      t.retired = undefined;
      const traffic = new RolloutTraffic(this.#client, st.namespace, st.service);
      await this.#write(t, `route all traffic back to revision ${target}`, () =>
        traffic.apply({ stable: back.selector, canary: cur.selector, weight: 0 }),
      );
      this.#retire(t, cur, back.delayMs);
      t.stable = {
        revision: back.revision,
        selector: back.selector,
        ids: back.ids,
        ...(back.template ? { template: back.template } : {}),
      };
      if (current) {
        current.outcome = 'RolledBack';
        current.reason = `undone: back to revision ${target}`;
      }
      Object.assign(st, {
        phase: 'RolledBack',
        reason: `undo: back to revision ${target}`,
        message: `revision ${target} is stable again`,
        stableRevision: target,
        weight: 0,
        instances: { stable: back.ids, canary: [] },
        updatedAt: this.#now(),
      });
      await this.#publish(t);
      return;
    }
    const tpl = lastOf(t.history, (h) => h.revision === target)?.template;
    const resource = await this.#client.getResource('Rollout', st.namespace, st.name);
    const parsed = rolloutSchema.parse(stripServerFields(resource.body));
    if (!tpl) {
      Object.assign(st, {
        reason: `undo: revision ${target} has no recorded template and its instances are gone`,
        updatedAt: this.#now(),
      });
      await this.#publish(t);
      return;
    }
    await this.#rollout(t, { ...parsed, spec: { ...parsed.spec, template: tpl } });
  }

  async #loadHistory(t: Tracked, ns: string, name: string): Promise<void> {
    if (t.history.length) return;
    try {
      const e = (await this.#client.kvGet(rolloutKeys.history(ns, name))).body;
      if (e) t.history = JSON.parse(e.value) as HistoryEntry[];
    } catch {}
  }

  async #publish(t: Tracked): Promise<void> {
    if (!t.status || !this.#lease.held) return;
    const { namespace: ns, name } = t.status;
    try {
      await this.#client.kvPut(rolloutKeys.status(ns, name), JSON.stringify(t.status));
      await this.#client.kvPut(rolloutKeys.history(ns, name), JSON.stringify(t.history));
    } catch (err) {
      this.#log(`${t.key}: cannot write status: ${(err as Error).message}`);
    }
  }

  #log(line: string): void {
    this.#o.log?.(`[rollout] ${line}`);
  }

  /** Stop following; rollouts in progress are aborted (rolled back), kept old sets drained. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#abort.abort();
    for (const t of this.#tracked.values())
      t.run?.inbox.push({ action: 'abort', id: 'shutdown', at: this.#now() });
    await Promise.allSettled(this.#loops);
    await Promise.allSettled([...this.#tracked.values()].map((t) => t.queue));
    await Promise.allSettled([...this.#tracked.values()].map((t) => this.#dropRetired(t)));
    await this.#lease.close();
    await this.#client.destroy();
  }
}

function stripServerFields(doc: StoredResource): unknown {
  const { resourceVersion: _rv, creationTimestamp: _ct, ...metadata } = doc.metadata;
  return { ...doc, metadata };
}

export { REVISION_LABEL };

function lastOf<T>(xs: readonly T[], pred: (x: T) => boolean): T | undefined {
  for (let i = xs.length - 1; i >= 0; i--) if (pred(xs[i])) return xs[i];
  return undefined;
}
