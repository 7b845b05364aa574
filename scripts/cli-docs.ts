/**
 * Keep docs/cli.md complete: every command of `buildCli()` gets a `## \`hexmesh ...\``
 * section, and every option and argument is named in it. Missing sections are appended
 * before "# Exit codes" from the command's own description; missing options are added
 * as rows after the section's last option row. Hand-written text is never touched.
 *
 *   node --import tsx scripts/cli-docs.ts          # update docs/cli.md
 *   node --import tsx scripts/cli-docs.ts --check  # exit 1 if anything is missing
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { Command, Option } from 'commander';
import { buildCli } from '../src/cli/program.ts';

const file = new URL('../docs/cli.md', import.meta.url);
let md = readFileSync(file, 'utf8');
const check = process.argv.includes('--check');
let changed = 0;

function commands(cmd: Command, path: string[], out: { path: string; cmd: Command }[]): typeof out {
  for (const sub of cmd.commands) {
    const p = [...path, sub.name()];
    out.push({ path: p.join(' '), cmd: sub });
    commands(sub, p, out);
  }
  return out;
}

function usage(path: string, cmd: Command): string {
  const args = cmd.registeredArguments.map((a) => (a.required ? `<${a.name()}>` : `[${a.name()}]`));
  return [path, ...args].join(' ');
}

function optionRow(o: Option): string {
  const long = o.long ?? o.flags;
  const value = o.flags.includes('<')
    ? ` ${o.flags.slice(o.flags.indexOf('<'))}`
    : o.flags.includes('[')
      ? ` ${o.flags.slice(o.flags.indexOf('['))}`
      : '';
  const names = [`\`${long}${value}\``];
  if (o.short && o.long) names.push(`\`${o.short}\``);
  const def =
    o.defaultValue !== undefined && typeof o.defaultValue !== 'boolean'
      ? ` (default \`${String(o.defaultValue)}\`)`
      : '';
  return `| ${names.join(', ')} | ${(o.description || '').replace(/\|/g, '\\|')}${def} |`;
}

/** [start, end) line indices of the `## \`path\`` or `## \`path ...\`` section. */
function sectionRange(lines: string[], path: string): [number, number] | undefined {
  const start = lines.findIndex((l) => l.startsWith(`## \`${path}\``) || l.startsWith(`## \`${path} `));
  if (start < 0) return undefined;
  let end = start + 1;
  while (end < lines.length && !/^#{1,2} /.test(lines[end])) end++;
  return [start, end];
}

const all = commands(buildCli(), ['hexmesh'], []);
for (const { path, cmd } of all) {
  let lines = md.split('\n');
  let range = sectionRange(lines, path);
  if (!range) {
    changed++;
    const rows = cmd.options.map(optionRow);
    const args = cmd.registeredArguments.map(
      (a) => `| \`${a.required ? `<${a.name()}>` : `[${a.name()}]`}\` | ${a.description || ''} |`,
    );
    const section = [
      `## \`${usage(path, cmd)}\``,
      '',
      cmd.description() || '',
      '',
      ...(args.length ? ['| argument | meaning |', '| --- | --- |', ...args, ''] : []),
      ...(rows.length ? ['| option | meaning |', '| --- | --- |', ...rows, ''] : []),
    ];
    const exit = lines.findIndex((l) => l === '# Exit codes');
    lines.splice(exit < 0 ? lines.length : exit, 0, ...section);
    md = lines.join('\n');
    lines = md.split('\n');
    range = sectionRange(lines, path)!;
  }
  const body = lines.slice(range[0], range[1]).join('\n');
  const missing = cmd.options.filter((o) => !body.includes(`\`${o.long ?? o.short ?? o.flags}`));
  if (missing.length) {
    changed += missing.length;
    let at = range[1];
    for (let i = range[1] - 1; i > range[0]; i--)
      if (lines[i].startsWith('| `-')) {
        at = i + 1;
        break;
      }
    if (at === range[1])
      lines.splice(at, 0, '| option | meaning |', '| --- | --- |', ...missing.map(optionRow), '');
    else lines.splice(at, 0, ...missing.map(optionRow));
    md = lines.join('\n');
  }
}

if (check) {
  if (changed) {
    console.error(
      `docs/cli.md is missing ${changed} command sections or options: run node --import tsx scripts/cli-docs.ts`,
    );
    process.exit(1);
  }
} else {
  writeFileSync(file, md);
  console.log(changed ? `docs/cli.md: added ${changed} sections or options` : 'docs/cli.md is complete');
}
