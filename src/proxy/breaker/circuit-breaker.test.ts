import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  CircuitBreaker,
  CIRCUIT_BREAKER_DEFAULTS,
  circuitBreakerFromSpec,
  type CallOutcome,
  type CircuitBreakerConfig,
  type CircuitState,
  type Permit,
} from './circuit-breaker.ts';

// ---------- reference model: the spec written as plainly as possible ----------

interface ModelPermit {
  epoch: number;
  trial: boolean;
}

interface Model {
  cfg: CircuitBreakerConfig;
  now: number;
  state: CircuitState;
  epoch: number;
  openedAt: number;
  trialOut: boolean;
  /** Every counted call since the window was last reset. */
  events: { t: number; outcome: CallOutcome; slow: boolean }[];
  permits: ModelPermit[];
}

function inWindow(m: Model): Model['events'] {
  const bucketMs = m.cfg.window / m.cfg.buckets;
  const current = Math.floor(m.now / bucketMs);
  return m.events.filter((e) => Math.floor(e.t / bucketMs) > current - m.cfg.buckets);
}

/** Would the closed circuit trip on the calls in the window now? */
function tripCondition(m: Model): boolean {
  const ev = inWindow(m);
  if (ev.length < m.cfg.requestVolumeThreshold) return false;
  const errors = ev.filter((e) => e.outcome !== 'success').length;
  if (errors > 0 && (errors / ev.length) * 100 >= m.cfg.errorThresholdPercent) return true;
  if (m.cfg.slowCallDuration === undefined) return false;
  const executed = ev.filter((e) => e.outcome !== 'rejected');
  const slow = executed.filter((e) => e.slow).length;
  return slow > 0 && (slow / executed.length) * 100 >= m.cfg.slowCallThresholdPercent;
}

function moveTo(m: Model, to: CircuitState): void {
  m.state = to;
  m.epoch++;
  m.trialOut = false;
  if (to === 'open') m.openedAt = m.now;
  if (to === 'closed') m.events = [];
}

// ---------- the real system under test ----------

interface Real {
  clock: { now: number };
  cb: CircuitBreaker;
  permits: Permit[];
  settled: Permit[];
  /** What the current command is doing, for checks in the state listener. */
  doing: { kind: 'acquire' } | { kind: 'record'; trial: boolean; outcome: CallOutcome; slow: boolean } | null;
  openedAt: number;
}

function pickIndex(len: number, pick: number): number {
  return pick % len;
}

class Acquire implements fc.Command<Model, Real> {
  check(): boolean {
    return true;
  }
  run(m: Model, r: Real): void {
    let admit: ModelPermit | undefined;
    if (m.state === 'closed') admit = { epoch: m.epoch, trial: false };
    else if (m.state === 'open') {
      if (m.now - m.openedAt >= m.cfg.sleepWindow) {
        moveTo(m, 'half-open');
        m.trialOut = true;
        admit = { epoch: m.epoch, trial: true };
      }
    } else if (!m.trialOut) {
      m.trialOut = true;
      admit = { epoch: m.epoch, trial: true };
    }
    r.doing = { kind: 'acquire' };
    const p = r.cb.tryAcquire();
    r.doing = null;
    assert.equal(p !== undefined, admit !== undefined, `admission in ${m.state}`);
    if (p && admit) {
      assert.equal(p.trial, admit.trial);
      r.permits.push(p);
      m.permits.push(admit);
      if (p.trial) {
        // Never more than one trial out in a half-open period.
        const trials = r.permits.filter((q) => q.trial && q.epoch === p.epoch);
        assert.equal(trials.length, 1, 'a second trial was admitted');
      }
    }
    assert.equal(r.cb.state, m.state);
  }
  toString(): string {
    return 'acquire';
  }
}

class Record implements fc.Command<Model, Real> {
  constructor(
    readonly outcome: CallOutcome,
    readonly slow: boolean,
    readonly pick: number,
  ) {}
  check(m: Readonly<Model>): boolean {
    return m.permits.length > 0;
  }
  run(m: Model, r: Real): void {
    const i = pickIndex(m.permits.length, this.pick);
    const [mp] = m.permits.splice(i, 1);
    const [rp] = r.permits.splice(i, 1);
    const limit = m.cfg.slowCallDuration ?? 100;
    const duration = this.slow ? limit + 1 : Math.max(0, limit - 1);
    const slow = m.cfg.slowCallDuration !== undefined && this.outcome !== 'rejected' && this.slow;
    const before = m.state;
    if (mp.epoch === m.epoch) {
      if (mp.trial) moveTo(m, this.outcome === 'success' && !slow ? 'closed' : 'open');
      else {
        m.events.push({ t: m.now, outcome: this.outcome, slow });
        if (tripCondition(m)) {
          moveTo(m, 'open');
        }
      }
    }
    r.doing = { kind: 'record', trial: rp.trial, outcome: this.outcome, slow };
    rp.record(this.outcome, duration);
    r.doing = null;
    r.settled.push(rp);
    assert.equal(r.cb.state, m.state, `after ${this.outcome} in ${before}`);
    if (before === 'closed' && m.state === 'closed') {
      const snap = r.cb.snapshot();
      const ev = inWindow(m);
      assert.equal(snap.total, ev.length, 'window total');
      assert.equal(snap.slow, ev.filter((e) => e.slow).length, 'slow count');
    }
  }
  toString(): string {
    return `record(${this.outcome}${this.slow ? ', slow' : ''}, #${this.pick})`;
  }
}

class Cancel implements fc.Command<Model, Real> {
  constructor(readonly pick: number) {}
  check(m: Readonly<Model>): boolean {
    return m.permits.length > 0;
  }
  run(m: Model, r: Real): void {
    const i = pickIndex(m.permits.length, this.pick);
    const [mp] = m.permits.splice(i, 1);
    const [rp] = r.permits.splice(i, 1);
    if (mp.trial && mp.epoch === m.epoch) m.trialOut = false;
    rp.cancel();
    r.settled.push(rp);
    assert.equal(r.cb.state, m.state);
  }
  toString(): string {
    return `cancel(#${this.pick})`;
  }
}

/** Settling a permit a second time must change nothing. */
class SettleAgain implements fc.Command<Model, Real> {
  constructor(
    readonly outcome: CallOutcome,
    readonly pick: number,
  ) {}
  check(): boolean {
    return true;
  }
  run(m: Model, r: Real): void {
    if (r.settled.length === 0) return;
    const p = r.settled[pickIndex(r.settled.length, this.pick)];
    const before = r.cb.snapshot();
    r.doing = { kind: 'record', trial: false, outcome: 'failure', slow: false };
    p.record(this.outcome, 1e9);
    p.cancel();
    r.doing = null;
    assert.deepEqual(r.cb.snapshot(), before);
    assert.equal(r.cb.state, m.state);
  }
  toString(): string {
    return `settle-again(${this.outcome}, #${this.pick})`;
  }
}

class Advance implements fc.Command<Model, Real> {
  constructor(readonly ms: number) {}
  check(): boolean {
    return true;
  }
  run(m: Model, r: Real): void {
    m.now += this.ms;
    r.clock.now += this.ms;
    assert.equal(r.cb.state, m.state, 'time alone never changes the state');
  }
  toString(): string {
    return `advance(${this.ms})`;
  }
}

const outcomeArb = fc.constantFrom<CallOutcome>('success', 'failure', 'timeout', 'rejected');
const commands = [
  fc.constant(new Acquire()),
  fc.constant(new Acquire()),
  fc.tuple(outcomeArb, fc.boolean(), fc.nat(50)).map(([o, s, p]) => new Record(o, s, p)),
  fc.tuple(outcomeArb, fc.boolean(), fc.nat(50)).map(([o, s, p]) => new Record(o, s, p)),
  fc.nat(50).map((p) => new Cancel(p)),
  fc.tuple(outcomeArb, fc.nat(50)).map(([o, p]) => new SettleAgain(o, p)),
  fc
    .oneof(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 900, max: 2500 }))
    .map((ms) => new Advance(ms)),
];

const configArb: fc.Arbitrary<CircuitBreakerConfig> = fc.record({
  enabled: fc.constant(true),
  buckets: fc.integer({ min: 1, max: 5 }),
  window: fc.constantFrom(1000, 2000),
  requestVolumeThreshold: fc.integer({ min: 1, max: 6 }),
  errorThresholdPercent: fc.constantFrom(0, 25, 50, 75, 100),
  sleepWindow: fc.constantFrom(500, 1000, 2000),
  slowCallDuration: fc.option(fc.constantFrom(50, 100), { nil: undefined }),
  slowCallThresholdPercent: fc.constantFrom(1, 50, 100),
});

test('model-based: the breaker follows the Hystrix state machine', () => {
  fc.assert(
    fc.property(configArb, fc.commands(commands, { maxCommands: 120 }), (cfg, cmds) => {
      const clock = { now: 0 };
      const cb = new CircuitBreaker(cfg, { now: () => clock.now });
      const real: Real = { clock, cb, permits: [], settled: [], doing: null, openedAt: -Infinity };
      cb.onStateChange((to, from) => {
        const d = real.doing;
        assert.ok(d, `state changed ${from} → ${to} outside acquire/record`);
        if (to === 'closed') {
          // Closes only on a trial success that was not slow.
          assert.equal(from, 'half-open');
          assert.ok(d.kind === 'record' && d.trial && d.outcome === 'success' && !d.slow);
        }
        if (to === 'half-open') {
          // Sleep window respected.
          assert.equal(from, 'open');
          assert.equal(d.kind, 'acquire');
          assert.ok(clock.now - real.openedAt >= cfg.sleepWindow, 'half-open before the sleep window');
        }
        if (to === 'open') {
          assert.equal(d.kind, 'record');
          real.openedAt = clock.now;
          if (from === 'closed') {
            // Opens only at or above volume and threshold.
            const s = cb.snapshot();
            assert.ok(s.total >= cfg.requestVolumeThreshold, 'opened below the volume threshold');
            const errors = s.failure + s.timeout + s.rejection;
            const executed = s.success + s.failure + s.timeout;
            const byErrors = errors > 0 && errors * 100 >= cfg.errorThresholdPercent * s.total;
            const bySlow =
              cfg.slowCallDuration !== undefined &&
              s.slow > 0 &&
              s.slow * 100 >= cfg.slowCallThresholdPercent * executed;
            assert.ok(byErrors || bySlow, 'opened below both thresholds');
          }
        }
      });
      const model: Model = {
        cfg,
        now: 0,
        state: 'closed',
        epoch: 0,
        openedAt: 0,
        trialOut: false,
        events: [],
        permits: [],
      };
      fc.modelRun(() => ({ model, real }), cmds);
      cb.close();
    }),
    { numRuns: 400 },
  );
});

test('Hystrix defaults: 20 calls at 50% trip it, sleep 5 s, one trial closes it', () => {
  let now = 0;
  const cb = new CircuitBreaker({}, { now: () => now });
  assert.equal(cb.config.requestVolumeThreshold, CIRCUIT_BREAKER_DEFAULTS.requestVolumeThreshold);
  const changes: string[] = [];
  cb.onStateChange((to, from) => changes.push(`${from}→${to}`));
  for (let i = 0; i < 10; i++) cb.tryAcquire()!.record('success', 1);
  for (let i = 0; i < 9; i++) cb.tryAcquire()!.record('failure', 1);
  assert.equal(cb.state, 'closed', '19 calls are below the volume threshold');
  cb.tryAcquire()!.record('timeout', 1);
  assert.equal(cb.state, 'open');
  now += 4999;
  assert.equal(cb.tryAcquire(), undefined);
  now += 1;
  const trial = cb.tryAcquire()!;
  assert.ok(trial.trial);
  assert.equal(cb.state, 'half-open');
  assert.equal(cb.tryAcquire(), undefined, 'only one trial');
  trial.record('success', 1);
  assert.equal(cb.state, 'closed');
  assert.equal(cb.snapshot().total, 0, 'window reset on close');
  assert.deepEqual(changes, ['closed→open', 'open→half-open', 'half-open→closed']);
});

test('a cancelled trial frees the slot; a call from before the trip cannot close the circuit', () => {
  let now = 0;
  const cb = new CircuitBreaker({ requestVolumeThreshold: 1, sleepWindow: 100 }, { now: () => now });
  const old = cb.tryAcquire()!;
  cb.tryAcquire()!.record('failure', 1);
  assert.equal(cb.state, 'open');
  now = 100;
  const trial = cb.tryAcquire()!;
  old.record('success', 1);
  assert.equal(cb.state, 'half-open', 'stale success ignored');
  trial.cancel();
  const trial2 = cb.tryAcquire()!;
  assert.ok(trial2?.trial);
  trial2.record('failure', 1);
  assert.equal(cb.state, 'open');
});

test('circuitBreakerFromSpec: absent or disabled means no breaker', () => {
  assert.equal(circuitBreakerFromSpec(undefined), undefined);
  assert.equal(circuitBreakerFromSpec({ ...CIRCUIT_BREAKER_DEFAULTS, enabled: false }), undefined);
  assert.ok(circuitBreakerFromSpec({ ...CIRCUIT_BREAKER_DEFAULTS }) instanceof CircuitBreaker);
});
