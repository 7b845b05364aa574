/**
 * docs/multi-host.md and the multi-host test run the same commands: every command of
 * test/multihost/steps.ts is on the page, word for word (line continuations and runs of
 * spaces aside).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ALL_STEPS, normaliseCommand } from '../multihost/steps.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

test('docs/multi-host.md shows every command the multi-host test runs', () => {
  const doc = normaliseCommand(readFileSync(join(root, 'docs', 'multi-host.md'), 'utf8'));
  for (const cmd of ALL_STEPS)
    assert.ok(doc.includes(normaliseCommand(cmd)), `docs/multi-host.md does not show:\n${cmd}`);
});
