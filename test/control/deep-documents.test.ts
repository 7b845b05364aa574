/**
 * Deeply nested YAML against a real `hexmesh control` process (a crash would take the test
 * runner with it in-process). Two 100 KB bodies of nested flow or block collections (`[[[…`,
 * `{"a":{"a":…`, `- - - …`) used to abort the process (V8: "RegExpCompiler Allocation failed
 * - process out of memory", after the YAML parser caught its own stack overflow), and 1 MB
 * of `[` held the event loop for ~4 s. Now each is a 400 naming the depth, at once, and the
 * control plane goes on serving.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { call, startCp } from './helpers.ts';

const BIN = join(import.meta.dirname, '../../bin/hexmesh.js');

test(
  'deeply nested YAML is a 400 naming the depth; the control plane stays up',
  { timeout: 90_000 },
  async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hexmesh-deep-'));
    const child = spawn(
      process.execPath,
      [BIN, 'control', '--listen', '127.0.0.1:0', '--data-dir', dir, '--auth', 'off'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const exited = once(child, 'exit');
    try {
      const deadline = Date.now() + 60_000;
      let m: RegExpMatchArray | null = null;
      while (!(m = out.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/)) && Date.now() < deadline) {
        if (child.exitCode !== null) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(m, `no listen line; stdout=${out} stderr=${err}`);
      const url = m[1];
      const apply = async (body: string) => {
        const t0 = Date.now();
        const r = await fetch(`${url}/v1/apply`, {
          method: 'POST',
          headers: { 'content-type': 'application/yaml' },
          body,
        });
        return { status: r.status, text: await r.text(), ms: Date.now() - t0 };
      };
      const bodies = {
        flow: '['.repeat(100_000),
        'flow map': '{"a":'.repeat(20_000),
        block: '- '.repeat(50_000),
        'flow, 1 MB': '['.repeat(1_000_000),
      };
      const answers: { name: string; status: number; text: string; ms: number }[] = [];
      for (const round of [1, 2])
        for (const [name, body] of Object.entries(bodies)) {
          const r = await apply(body).catch((e: Error) => ({ status: 0, text: String(e.cause ?? e), ms: 0 }));
          answers.push({ name: `${name} (round ${round})`, ...r });
        }
      // First: the process survived them all.
      const alive = await fetch(`${url}/v1/health`).then(
        (r) => r.status,
        () => 0,
      );
      assert.equal(alive, 200, `the control plane died: ${err.slice(0, 300)}`);
      for (const r of answers) {
        assert.equal(r.status, 400, `${r.name}: ${r.text.slice(0, 200)}`);
        assert.ok(
          /HEXMESH_ERR_BAD_REQUEST.*nested deeper than 100/.test(r.text),
          `${r.name}: ${r.text.slice(0, 200)}`,
        );
        assert.ok(r.ms < 1000, `${r.name}: answered after ${r.ms} ms`);
      }
      // Ordinary documents, nested as resources are, still apply.
      const ok = await apply(
        'apiVersion: hexmesh.io/v1alpha1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports: [{port: 80}]\n',
      );
      assert.equal(ok.status, 200, ok.text);
      assert.equal((await fetch(`${url}/v1/health`)).status, 200);
      assert.equal(child.exitCode, null, 'still running');
    } finally {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
      await rm(dir, { recursive: true, force: true });
    }
  },
);

test('a YAML alias bomb is a 400 naming it, not an internal error', async () => {
  const t = await startCp();
  try {
    let yaml = 'a: &a [x, x, x, x, x, x, x, x, x]\n';
    for (const [from, to] of ['ab', 'bc', 'cd', 'de', 'ef', 'fg', 'gh'])
      yaml += `${to}: &${to} [${Array(9).fill(`*${from}`).join(', ')}]\n`;
    const r = await call(t.url, 'POST', '/v1/apply', yaml, { 'content-type': 'application/yaml' });
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body.error.code, 'HEXMESH_ERR_BAD_REQUEST');
    assert.match(r.body.error.message, /^request body: Excessive alias count/);
  } finally {
    await t.close();
  }
});
