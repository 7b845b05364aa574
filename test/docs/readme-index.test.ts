/**
 * README's documentation index lists every page under docs/ (a new page without a link from
 * the README is a page nobody finds), and links nothing that is not there. The quick start
 * links the install and multi-host guides.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const readme = readFileSync(join(root, 'README.md'), 'utf8');

/** The text of a `## title` section, up to the next `## `. */
function section(title: string): string {
  const start = readme.indexOf(`\n## ${title}\n`);
  assert.ok(start >= 0, `README.md has no "## ${title}" section`);
  const next = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, next < 0 ? undefined : next);
}

const linked = (text: string) =>
  new Set([...text.matchAll(/\]\((docs\/[^)#\s]+\.md)(#[^)]*)?\)/g)].map((m) => m[1]));

test("README's Documentation section links every page under docs/, and only pages that exist", () => {
  const index = linked(section('Documentation'));
  const pages = readdirSync(join(root, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`);
  const missing = pages.filter((p) => !index.has(p));
  assert.deepEqual(missing, [], 'pages under docs/ missing from README.md "## Documentation"');
  const dangling = [...index].filter((p) => !existsSync(join(root, p)));
  assert.deepEqual(dangling, [], 'README.md "## Documentation" links pages that do not exist');
});

test("README's quick start links the install and multi-host guides", () => {
  const quick = linked(section('Quick start'));
  for (const page of ['docs/install.md', 'docs/multi-host.md'])
    assert.ok(quick.has(page), `README.md "## Quick start" does not link ${page}`);
});
