/**
 * The README's "A tour of the demo mesh", checked without starting a mesh: every YAML file
 * under examples/ validates (a mesh file with its includes, a proxy config, or resources
 * against the resource schemas), the tour's files are there, and every `hexmesh …` line of
 * the tour resolves to a real sub-command whose options all exist (as `--help` would).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import type { Command } from 'commander';
import { buildCli } from '../../src/cli/program.ts';
import { loadProxyConfig, parseDocuments, validate } from '../../src/config/load.ts';
import { resourceSchema } from '../../src/config/resources.ts';
import { loadMeshFile } from '../../src/runtime/mesh-file.ts';
import { ROOT } from '../support/cli.ts';

function yamlFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...yamlFiles(p));
    else if (/\.ya?ml$/.test(e.name)) out.push(p);
  }
  return out.sort();
}

/** The tour section of the README: from its heading to the next `## `. */
function tourSection(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## A tour of the demo mesh');
  assert.ok(start >= 0, 'README has a "A tour of the demo mesh" section');
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, end < 0 ? undefined : end);
}

/** The `hexmesh …` command lines of the tour's sh blocks, comments stripped. */
function tourCommands(): string[][] {
  const out: string[][] = [];
  for (const block of tourSection().matchAll(/```sh\n([\s\S]*?)```/g))
    for (const line of block[1]!.split('\n')) {
      const cmd = line.replace(/\s#.*$/, '').trim();
      if (cmd.startsWith('hexmesh ')) out.push(cmd.split(/\s+/).slice(1));
    }
  return out;
}

test('every YAML file under examples/ validates', async () => {
  const files = yamlFiles(join(ROOT, 'examples'));
  assert.ok(files.length >= 5, `found ${files.length} files`);
  const kinds = new Set<string>();
  for (const file of files) {
    const name = relative(ROOT, file);
    const docs = parseDocuments(readFileSync(file, 'utf8'), name);
    assert.ok(docs.length > 0, `${name}: no document`);
    const first = docs[0] as Record<string, unknown>;
    if (docs.length === 1 && 'proxy' in first) {
      await loadProxyConfig(file);
      continue;
    }
    if (docs.length === 1 && 'services' in first) {
      await loadMeshFile(file); // validates its include: files too
      continue;
    }
    for (const doc of docs) {
      const r = validate(resourceSchema, doc, name);
      kinds.add(r.kind);
    }
  }
  for (const k of ['Service', 'HTTPRoute', 'TrafficPolicy', 'AuthorizationPolicy', 'Rollout'])
    assert.ok(kinds.has(k), `some example declares a ${k}`);
});

test('the tour names files that exist and validate', () => {
  const tour = tourSection();
  const paths = [...tour.matchAll(/examples\/shop\/tour\/[\w.-]+\.yaml/g)].map((m) => m[0]);
  assert.ok(paths.length >= 3, 'the tour applies its files');
  for (const p of new Set(paths)) {
    const docs = parseDocuments(readFileSync(join(ROOT, p), 'utf8'), p);
    for (const d of docs) validate(resourceSchema, d, p);
  }
});

test('every hexmesh command line of the tour resolves to a sub-command with known options', () => {
  const cmds = tourCommands();
  assert.ok(cmds.length >= 10, `found ${cmds.length} command lines`);
  const seen = new Set<string>();
  for (const argv of cmds) {
    let cmd: Command = buildCli();
    let rest = argv;
    // Walk down the sub-commands (`rollout status`, `diagnose proxy`), as `--help` resolves them.
    for (;;) {
      const sub = cmd.commands.find((c) => c.name() === rest[0] || c.aliases().includes(rest[0]!));
      if (!sub) break;
      cmd = sub;
      rest = rest.slice(1);
    }
    const line = `hexmesh ${argv.join(' ')}`;
    assert.notEqual(cmd.name(), 'hexmesh', `${line}: no such command`);
    const path = [];
    for (let c: Command | null = cmd; c && c.parent; c = c.parent) path.unshift(c.name());
    seen.add(path.join(' '));
    assert.equal(cmd.commands.length, 0, `${line}: "${path.join(' ')}" needs a sub-command`);
    // Every --option / -o of the line is declared on that command (or is --help).
    const { unknown, operands } = cmd.parseOptions(rest);
    assert.deepEqual(unknown, [], `${line}: unknown options`);
    const required = cmd.registeredArguments.filter((a) => a.required).length;
    assert.ok(operands.length >= required, `${line}: ${required} argument(s) needed, got ${operands.length}`);
  }
  for (const c of ['dashboard', 'stat', 'apply', 'diagnose proxy', 'delete', 'rollout start', 'down'])
    assert.ok(seen.has(c), `the tour runs hexmesh ${c}`);
});
