import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';

const MODULE = new URL('./idle-heap.ts', import.meta.url).href;
const run = promisify(execFile);

interface Outcome {
  resting: number;
  grown: number;
  after: number;
  forcedMinor: number;
  forcedOther: number;
  returns: number;
  /** Mark-compacts V8 ran by itself. */
  markCompacts: number;
}

/**
 * In a fresh process (V8's heap is process-wide), in MiB: the young generation at rest, after a
 * burst of allocation that makes V8 grow it, and once the scenario is over; and the collections
 * asked for (forced) from JavaScript meanwhile.
 *   quiet:   the burst, then nothing, with the watcher on
 *   control: the same without the watcher
 *   busy:    the burst, then 9 s of steady work (the event loop ~60 % used)
 *   rest:    no burst, the watcher on
 */
async function scenario(name: 'quiet' | 'control' | 'busy' | 'rest'): Promise<Outcome> {
  const script = `
    import { PerformanceObserver, constants } from 'node:perf_hooks';
    import { setFlagsFromString } from 'node:v8';
    import { setTimeout as sleep } from 'node:timers/promises';
    import { returnYoungGenerationWhenIdle, youngGenerationBytes } from ${JSON.stringify(MODULE)};
    const MiB = (b) => b / 1048576;
    let forcedMinor = 0, forcedOther = 0, returns = 0, markCompacts = 0;
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        if (!(e.detail.flags & constants.NODE_PERFORMANCE_GC_FLAGS_FORCED)) {
          if (e.detail.kind !== constants.NODE_PERFORMANCE_GC_MINOR) markCompacts++;
          continue;
        }
        if (e.detail.kind === constants.NODE_PERFORMANCE_GC_MINOR) forcedMinor++; else forcedOther++;
      }
    }).observe({ entryTypes: ['gc'] });
    // Keeps a few thousand objects alive across scavenges: V8 grows the young generation to its
    // limit, and promotes too little for a mark-compact (which would arm V8's memory reducer).
    const burst = () => { let keep = []; for (let i = 0; i < 2e6; i++) { keep.push({ i, s: 'x' + i }); if (keep.length > 4000) keep = []; } };
    const name = ${JSON.stringify(name)};
    // Start-up ran with growth held, as the proxy's does (startup-heap.ts); V8's default from here.
    const resting = youngGenerationBytes();
    setFlagsFromString('--semi-space-growth-factor=2');
    if (name !== 'control') returnYoungGenerationWhenIdle({ quietMs: 500, tickMs: 250, onReturn: () => returns++ });
    if (name !== 'rest') burst();
    const grown = youngGenerationBytes();
    if (name === 'busy') {
      const end = Date.now() + 9000;
      while (Date.now() < end) {
        const until = Date.now() + 12;
        let junk = [];
        while (Date.now() < until) junk.push({ t: Date.now() });
        await sleep(8);
      }
    } else {
      const end = Date.now() + 16000;
      while (Date.now() < end && youngGenerationBytes() > resting) await sleep(250);
      if (name === 'control' || name === 'rest') await sleep(Math.max(0, end - Date.now() - 6000));
    }
    await sleep(50);
    console.log(JSON.stringify({ resting: MiB(resting), grown: MiB(grown), after: MiB(youngGenerationBytes()), forcedMinor, forcedOther, returns, markCompacts }));
    process.exit(0);
  `;
  const args = ['--semi-space-growth-factor=1', '--import', 'tsx', '--input-type=module', '-e', script];
  const { stdout } = await run(process.execPath, args, {
    env: { ...process.env, NODE_OPTIONS: '' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return JSON.parse(stdout.trim().split('\n').pop()!) as Outcome;
}

describe('idle heap', { concurrency: true }, () => {
  it('gives the grown young generation back once quiet, with a few scavenges', async () => {
    const o = await scenario('quiet');
    assert.ok(o.grown > o.resting, `the burst grew it: ${o.resting} → ${o.grown} MiB`);
    assert.ok(o.after <= o.resting, `back to rest: ${JSON.stringify(o)}`);
    // Two as a rule (the first closes the burst's allocation sample), four at most in a quiet
    // spell; a loaded test machine can break the spell once.
    assert.ok(o.forcedMinor >= 2 && o.forcedMinor <= 8, `scavenges asked for: ${JSON.stringify(o)}`);
    assert.equal(o.forcedOther, 0);
    assert.equal(o.returns, 1);
  });

  it('without it, V8 keeps the grown young generation through the same quiet spell', async (t) => {
    const o = await scenario('control');
    assert.ok(o.grown > o.resting, `the burst grew it: ${o.resting} → ${o.grown} MiB`);
    // A mark-compact arms V8's memory reducer, which would shrink it (none runs at 1000 rps).
    if (o.markCompacts > 0) return t.skip(`V8 ran ${o.markCompacts} mark-compact(s) this time`);
    assert.equal(o.after, o.grown, `still grown: ${JSON.stringify(o)}`);
  });

  it('asks for nothing while the proxy is busy', async () => {
    const o = await scenario('busy');
    assert.equal(o.forcedMinor + o.forcedOther, 0, JSON.stringify(o));
  });

  it('asks for nothing when there is nothing to give back', async () => {
    const o = await scenario('rest');
    assert.equal(o.forcedMinor + o.forcedOther, 0, JSON.stringify(o));
  });
});
