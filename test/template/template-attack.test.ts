/**
 * `hexmesh template` against hostile data and a hostile filesystem, with a real control plane:
 * a re-render keeps the destination's mode and owner, a symlink swapped in at the
 * destination is replaced (never followed), partials stay inside the template's directory
 * whatever a KV value says, a template that renders itself or loops over a range from KV
 * stops at the render limit with the last good file kept, and a control plane killed with
 * SIGKILL mid-watch leaves the file as it was until it is back, then re-renders.
 */
import assert from 'node:assert/strict';
import { chown, lstat, mkdtemp, readFile, rm, stat, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { call, eventually, startCp, type TestCp } from '../control/helpers.ts';
import { Running } from '../cli/control-support.ts';
import { ControlClient } from '../../src/cli/client/control-client.ts';
import { TemplateRunner, type TemplateRunnerOptions } from '../../src/template/template-runner.ts';
import { freePort } from '../../src/runtime/ports.ts';

let cp: TestCp;
let dir: string;
before(async () => {
  cp = await startCp();
  dir = await mkdtemp(join(tmpdir(), 'hexmesh-tmpl-attack-'));
});
after(async () => {
  await cp.close();
  await rm(dir, { recursive: true, force: true });
});

/** A runner over `text` (written to `<name>.tmpl`) rendering to `<name>.out`, with its warnings. */
async function runner(
  name: string,
  text: string,
  opts: Partial<TemplateRunnerOptions> = {},
): Promise<{ r: TemplateRunner; out: string; warnings: string[] }> {
  const source = join(dir, `${name}.tmpl`);
  await writeFile(source, text);
  const out = join(dir, `${name}.out`);
  const warnings: string[] = [];
  const r = await TemplateRunner.create({
    client: new ControlClient(cp.url),
    templates: [{ source, destination: out }],
    waitMinMs: 20,
    warn: (l) => warnings.push(l),
    ...opts,
  });
  return { r, out, warnings };
}

test('a re-render keeps the destination mode and owner; a symlink swapped in at the destination is replaced, not followed', async () => {
  await call(cp.url, 'PUT', '/v1/kv/secret/db', 'pw-1');
  const { r, out } = await runner('secret', 'password {{ "secret/db" | key }}\n');
  await writeFile(out, 'old\n', { mode: 0o600 });
  const root = process.getuid?.() === 0;
  if (root) await chown(out, 4242, 4343);
  try {
    assert.equal(await r.start(), true);
    assert.equal(await readFile(out, 'utf8'), 'password pw-1\n');
    const st = await stat(out);
    assert.equal((st.mode & 0o777).toString(8), '600', 'a file of secrets stays 0600');
    if (root) assert.deepEqual([st.uid, st.gid], [4242, 4343], 'and keeps its owner');

    // Someone with write access to the directory swaps the destination for a symlink.
    const victim = join(dir, 'victim');
    await writeFile(victim, 'victim\n', { mode: 0o644 });
    await unlink(out);
    await symlink(victim, out);
    const passes = r.passes;
    await call(cp.url, 'PUT', '/v1/kv/secret/db', 'pw-2');
    await eventually(
      're-rendered',
      async () => r.passes > passes && (await readFile(out, 'utf8')).includes('pw-2'),
    );
    assert.equal(await readFile(victim, 'utf8'), 'victim\n', 'the link target is untouched');
    assert.ok((await lstat(out)).isFile(), 'the destination is a file again');
  } finally {
    await r.close();
  }
});

test('partials stay inside the template directory, whatever name a KV value gives them', async () => {
  const outside = join(dir, '..', `outside-${process.pid}.txt`);
  await writeFile(outside, 'OUTSIDE SECRET\n');
  try {
    for (const [name, text, key] of [
      ['up', '{% render "../outside-PID.txt" %}', undefined],
      ['abs', '{% render "OUTSIDE" %}', undefined],
      ['dyn', '{% assign p = "partial/name" | key %}{% render p %}', '../outside-PID.txt'],
      ['dyn-abs', '{% assign p = "partial/name" | key %}{% include p %}', 'OUTSIDE'],
    ] as const) {
      const t = text.replace('PID', String(process.pid)).replace('OUTSIDE', outside);
      if (key)
        await call(
          cp.url,
          'PUT',
          '/v1/kv/partial/name',
          key.replace('PID', String(process.pid)).replace('OUTSIDE', outside),
        );
      const { r, out, warnings } = await runner(name, t);
      try {
        assert.equal(await r.renderAll(), false, name);
        assert.match(warnings.join('\n'), /Failed to lookup/, name);
        await assert.rejects(readFile(out, 'utf8'), { code: 'ENOENT' }, `${name}: nothing written`);
      } finally {
        await r.close();
      }
    }
  } finally {
    await rm(outside, { force: true });
  }
});

test(
  'a template that renders itself or loops over a range from KV stops at the render limit; the last good file stays',
  { timeout: 60_000 },
  async () => {
    await call(cp.url, 'PUT', '/v1/kv/loop/n', '3');
    const limits = { renderLimitMs: 300 };
    const { r, out, warnings } = await runner(
      'loop',
      '{% assign n = "loop/n" | key | plus: 0 %}{% for i in (1..n) %}server s{{ i }}\n{% endfor %}',
      { limits },
    );
    try {
      assert.equal(await r.start(), true);
      const good = await readFile(out, 'utf8');
      assert.equal(good, 'server s1\nserver s2\nserver s3\n');
      // Thirty million lines: stopped by time, not by memory.
      const passes = r.passes;
      await call(cp.url, 'PUT', '/v1/kv/loop/n', '30000000');
      await eventually('the failed render', async () => r.passes > passes);
      assert.match(warnings.join('\n'), /render limit exceeded.*keeping the last good/);
      assert.equal(await readFile(out, 'utf8'), good);
    } finally {
      await r.close();
    }

    // A template that renders itself: without the limit it never finishes, and neither does close().
    const self = await runner('self', 'again {% render "self.tmpl" %}', { limits });
    const t0 = Date.now();
    assert.equal(await self.r.renderAll(), false);
    await self.r.close();
    assert.ok(Date.now() - t0 < 5000, `stopped at the limit (${Date.now() - t0} ms)`);
    assert.match(self.warnings.join('\n'), /render limit exceeded/);

    // A 1 MiB value in a loop: stopped by the memory limit, at once (default limits).
    await call(cp.url, 'PUT', '/v1/kv/big', 'x'.repeat(1024 * 1024));
    const big = await runner('big', '{% assign b = "big" | key %}{% for i in (1..100) %}{{ b }}{% endfor %}');
    try {
      assert.equal(await big.r.renderAll(), false);
      assert.match(big.warnings.join('\n'), /memory alloc limit exceeded/);
      await assert.rejects(readFile(big.out, 'utf8'), { code: 'ENOENT' });
    } finally {
      await big.r.close();
    }
  },
);

test(
  'the control plane killed with SIGKILL mid-watch: the file stays as last rendered, and re-renders once it is back',
  { timeout: 120_000 },
  async () => {
    const data = join(dir, 'cp-data');
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const control = () =>
      new Running(['control', '--listen', `127.0.0.1:${port}`, '--data-dir', data, '--auth', 'off']);
    let c = control();
    let t: Running | undefined;
    try {
      await c.waitFor(/listening on/, 60_000);
      await call(url, 'PUT', '/v1/kv/app/port', '8001');
      await writeFile(join(dir, 'app.tmpl'), 'port {{ "app/port" | key }}\n');
      const out = join(dir, 'app.out');
      t = new Running([
        'template',
        '-t',
        `${join(dir, 'app.tmpl')}:${out}`,
        '--wait',
        '50ms',
        '--control',
        url,
      ]);
      await t.waitFor(/rendered/);
      assert.equal(await readFile(out, 'utf8'), 'port 8001\n');

      await c.stop('SIGKILL');
      // The watch breaks: the runner says so and retries, and the file is left alone.
      await eventually(
        'the broken watch reported',
        async () => /cannot read key:app\/port: .*retrying, files left as they are/.test(t!.stderr),
        15_000,
      );
      assert.equal(await readFile(out, 'utf8'), 'port 8001\n');
      assert.equal(t.child.exitCode, null, `still running: ${t.stderr}`);

      c = control();
      await c.waitFor(/listening on/, 60_000);
      await call(url, 'PUT', '/v1/kv/app/port', '8002');
      await eventually(
        're-rendered after the restart',
        async () => (await readFile(out, 'utf8')) === 'port 8002\n',
        30_000,
      );
      assert.equal((await t.stop('SIGTERM')).code, 0, t.stderr);
    } finally {
      await t?.stop('SIGKILL');
      await c.stop('SIGKILL');
    }
  },
);
