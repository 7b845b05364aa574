/**
 * `hexmesh completion bash|zsh|fish` (issue 15): the bash script, sourced in a real bash,
 * completes every command of buildCli(), sub-commands by path and each command's options;
 * zsh gets the same through bashcompinit, fish a complete line per command.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildCli } from '../../src/cli/program.ts';
import { runCli } from '../support/cli.ts';

/** What the script offers after `words` (the last one being completed), in a real bash. */
function complete(script: string, words: string[]): string[] {
  const r = spawnSync(
    'bash',
    [
      '-c',
      `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((\${#COMP_WORDS[@]} - 1)); _hexmesh; printf '%s\\n' "\${COMPREPLY[@]}"`,
      'bash',
      script,
      ...words,
    ],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean).sort();
}

test('completion bash completes commands, sub-commands and options in a real bash; zsh and fish scripts', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hexmesh-completion-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const bash = await runCli(['completion', 'bash']);
  assert.equal(bash.code, 0, bash.stderr);
  const script = join(dir, 'hexmesh.bash');
  writeFileSync(script, bash.stdout);

  const top = buildCli()
    .commands.map((c) => c.name())
    .sort();
  for (const name of top) assert.ok(complete(script, ['hexmesh', '']).includes(name), name);
  assert.deepEqual(complete(script, ['hexmesh', 'rollout', 'p']), ['pause', 'promote']);
  assert.deepEqual(complete(script, ['hexmesh', 'context', 'u']), ['use']);
  assert.ok(complete(script, ['hexmesh', 'apply', '--d']).includes('--dry-run'));
  // Options of a sub-command, after an option of its own.
  assert.deepEqual(complete(script, ['hexmesh', 'kv', '-n', 'x', 'wa']), ['watch']);
  assert.ok(complete(script, ['hexmesh', 'identity', 'token', 'create', '--']).includes('--help'));

  const zsh = await runCli(['completion', 'zsh']);
  assert.match(zsh.stdout, /bashcompinit/);
  assert.match(zsh.stdout, /complete -o default -F _hexmesh hexmesh/);
  const fish = await runCli(['completion', 'fish']);
  for (const name of top) assert.match(fish.stdout, new RegExp(`-n '__fish_use_subcommand' -a '${name}'`));
  assert.match(fish.stdout, /__fish_seen_subcommand_from apply' -l dry-run/);
  const bad = await runCli(['completion', 'tcsh']);
  assert.equal(bad.code, 2);
});
