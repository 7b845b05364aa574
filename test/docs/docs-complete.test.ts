/**
 * Keeps the newcomer documentation in step with the code (as fastify's test that keeps its
 * error catalogue documented): every error code, every CLI command and option, every
 * top-level proxy setting and TrafficPolicy block must be documented; links between docs
 * must resolve; the complete config examples must validate, and the documented output of
 * `hexmesh validate` must be what the code prints.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { ConfigError, parseDocuments, parseProxyConfig } from '../../src/config/load.ts';
import { proxySettingsSchema } from '../../src/config/proxy-config.ts';
import { trafficPolicySpecSchema } from '../../src/config/resources.ts';
import { ERROR_CODES } from '../../src/errors/hexmesh-error.ts';
import { buildCli } from '../../src/cli/program.ts';
import { EXIT } from '../../src/cli/exit-codes.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const docsDir = join(root, 'docs');
const read = (name: string): string => readFileSync(join(docsDir, name), 'utf8');

/** The text under the first heading (of `level`) whose title contains `title`, up to the next heading of that level or higher. */
function section(md: string, level: number, title: string): string | undefined {
  const lines = md.split('\n');
  let inFence = false;
  let start = -1;
  const out: string[] = [];
  for (const line of lines) {
    if (line.startsWith('```')) inFence = !inFence;
    const m = inFence ? null : /^(#{1,6}) (.*)$/.exec(line);
    if (start >= 0) {
      if (m && m[1].length <= level) break;
      out.push(line);
    } else if (m && m[1].length === level && m[2].includes(title)) start = 0;
  }
  return start >= 0 ? out.join('\n') : undefined;
}

test('docs/errors.md has a section per error code with its header, HTTP status and gRPC status', () => {
  const md = read('errors.md');
  for (const [code, info] of Object.entries(ERROR_CODES)) {
    const body = section(md, 2, `\`${code}\``);
    assert.ok(body !== undefined, `docs/errors.md: no "## \`${code}\`" section`);
    assert.ok(
      body.includes(`\`${info.header}\``) || body.includes(`\`x-hexmesh-error: ${info.header}\``),
      `${code}: header value \`${info.header}\` not in its section`,
    );
    assert.match(
      body,
      new RegExp(`\\b${info.status}\\b`),
      `${code}: HTTP status ${info.status} not in its section`,
    );
    assert.match(
      body,
      new RegExp(`\\b${info.grpc}\\b`),
      `${code}: gRPC status ${info.grpc} not in its section`,
    );
  }
});

test('docs/errors.md and docs/cli.md list every CLI exit code', () => {
  for (const doc of ['errors.md', 'cli.md']) {
    const md = read(doc);
    for (const [name, value] of Object.entries(EXIT))
      assert.match(
        md,
        new RegExp(`\\|\\s*\`${value}\`\\s*\\|`),
        `docs/${doc}: exit code ${value} (${name}) not in a table`,
      );
  }
});

function walk(cmd: Command, path: string[], out: { path: string; cmd: Command }[]): void {
  for (const sub of cmd.commands) {
    const p = [...path, sub.name()];
    out.push({ path: p.join(' '), cmd: sub });
    walk(sub, p, out);
  }
}

test('docs/cli.md has a section per command naming each of its options and arguments', () => {
  const md = read('cli.md');
  const program = buildCli();
  const commands = [{ path: 'hexmesh', cmd: program }];
  walk(program, ['hexmesh'], commands);
  assert.ok(commands.length > 1, 'buildCli() has no sub-commands');
  for (const { path, cmd } of commands) {
    // `hexmesh kv` must not be satisfied by the `hexmesh kv get` section: the path ends at a backtick or a space.
    const body = section(md, 2, `\`${path}\``) ?? section(md, 2, `\`${path} `);
    assert.ok(body !== undefined, `docs/cli.md: no "## \`${path}...\`" section`);
    for (const opt of cmd.options) {
      const flag = opt.long ?? opt.short ?? opt.flags;
      assert.ok(body.includes(`\`${flag}`), `docs/cli.md: option ${flag} of "${path}" not in its section`);
    }
    for (const arg of cmd.registeredArguments) {
      const shown = arg.required ? `<${arg.name()}>` : `[${arg.name()}]`;
      assert.ok(body.includes(shown), `docs/cli.md: argument ${shown} of "${path}" not in its section`);
    }
  }
});

test('docs/configuration.md documents every proxy setting and every TrafficPolicy block', () => {
  const md = read('configuration.md');
  const proxy = section(md, 2, 'Proxy settings');
  assert.ok(proxy !== undefined, 'docs/configuration.md: no "## Proxy settings" section');
  for (const key of Object.keys(proxySettingsSchema.shape))
    assert.ok(proxy.includes(`\`${key}\``), `proxy.${key} not documented under "Proxy settings"`);
  const policy = section(md, 2, 'TrafficPolicy');
  assert.ok(policy !== undefined, 'docs/configuration.md: no "## TrafficPolicy" section');
  for (const key of Object.keys(trafficPolicySpecSchema.shape))
    assert.ok(
      section(policy, 3, `\`${key}\``) !== undefined,
      `TrafficPolicy spec.${key} has no "### \`${key}\`" section`,
    );
});

test('relative links in the newcomer docs point at files that exist', () => {
  for (const doc of ['proxy.md', 'configuration.md', 'errors.md', 'cli.md', 'architecture.md']) {
    const md = read(doc);
    for (const m of md.matchAll(/\]\(([^)#\s]+)(#[^)\s]*)?\)/g)) {
      const target = m[1];
      if (/^[a-z]+:/.test(target)) continue;
      assert.ok(existsSync(resolve(docsDir, target)), `docs/${doc}: broken link ${target}`);
    }
  }
});

/** Fenced blocks that follow a `<!-- check: <kind> -->` marker. */
function checkedBlocks(md: string, kind: string): string[] {
  const out: string[] = [];
  const re = new RegExp(`<!-- check: ${kind} -->\\s*\`\`\`[a-z]*\\n([\\s\\S]*?)\`\`\``, 'g');
  for (const m of md.matchAll(re)) out.push(m[1]);
  return out;
}

test('the complete config examples in the docs are valid', () => {
  let n = 0;
  for (const doc of ['configuration.md', 'proxy.md']) {
    for (const yaml of checkedBlocks(read(doc), 'valid')) {
      const docs = parseDocuments(yaml, doc);
      assert.equal(docs.length, 1);
      assert.doesNotThrow(() => parseProxyConfig(docs[0], doc), `an example in docs/${doc} is invalid`);
      n++;
    }
  }
  assert.ok(n >= 3, `expected at least 3 checked examples, found ${n}`);
});

test('the documented validation report is what the code reports', () => {
  const md = read('configuration.md');
  const [input] = checkedBlocks(md, 'invalid');
  const [expected] = checkedBlocks(md, 'invalid-output');
  assert.ok(input && expected, 'docs/configuration.md: invalid example or its output is missing');
  let err: unknown;
  try {
    parseProxyConfig(parseDocuments(input, 'web-proxy.yaml')[0], 'web-proxy.yaml');
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof ConfigError, 'the invalid example validated');
  assert.equal(`hexmesh: ${err.message}`, expected.trimEnd());
});
