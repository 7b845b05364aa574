import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';

const MODULE = new URL('./startup-heap.ts', import.meta.url).href;

/**
 * In a fresh process (V8 flags are process-wide): the young generation's size after a burst of
 * allocation with growth held, then after the same burst once released, in MiB.
 */
function youngGenerationSizes(nodeFlags: string[] = []): {
  before: number;
  held: number;
  released: number;
} {
  const script = `
    import { getHeapSpaceStatistics } from 'node:v8';
    import { holdYoungGeneration } from ${JSON.stringify(MODULE)};
    const newSpace = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size / 1048576;
    // A burst that keeps a few thousand objects alive across scavenges: V8 grows for it.
    const burst = () => { let keep = []; for (let i = 0; i < 2e6; i++) { keep.push({ i, s: 'x' + i }); if (keep.length > 4000) keep = []; } };
    const before = newSpace();
    const release = holdYoungGeneration();
    burst();
    const held = newSpace();
    release();
    burst(); burst();
    console.log(JSON.stringify({ before, held, released: newSpace() }));
  `;
  const out = execFileSync(
    process.execPath,
    [...nodeFlags, '--import', 'tsx', '--input-type=module', '-e', script],
    {
      env: { ...process.env, NODE_OPTIONS: '' },
      encoding: 'utf8',
      timeout: 60_000,
    },
  );
  return JSON.parse(out.trim().split('\n').pop()!) as { before: number; held: number; released: number };
}

describe('startup heap', () => {
  it('holds the young generation at its initial size, then lets V8 grow it again', () => {
    const { before, held, released } = youngGenerationSizes();
    assert.equal(held, before, 'no growth while held');
    assert.ok(released > held, `grew to ${released} MiB once released`);
  });

  it('leaves a growth factor the operator set alone', () => {
    const { before, held } = youngGenerationSizes(['--semi-space-growth-factor=4']);
    assert.ok(held > before, `V8 grew it as the operator asked: ${before} → ${held} MiB`);
  });
});
