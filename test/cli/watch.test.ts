/**
 * Issue 15: `--watch` redraws in place on a terminal and appends plain blocks into a pipe.
 * The terminal is a real pseudo-TTY (util-linux `script`), the CLI a real process against a
 * real control plane scraping real sidecars; `hexmesh top` (tap from real controlled
 * sidecars) uses the same frames.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BIN, ROOT, cliTestHome, runCli } from '../support/cli.ts';
import { startStatsMesh } from '../control/metrics-support.ts';
import { startViewsMesh } from './mesh-views-support.ts';

const ESC = '\x1b';
const HOME = `${ESC}[H`;
const CLEAR = `${ESC}[2J`;

/** Occurrences of `needle` in `s`. */
const count = (s: string, needle: string) => s.split(needle).length - 1;

/**
 * Run `hexmesh <args>` until `done(output)` holds (or `ms` pass), then Ctrl-C it; with
 * `tty` under `script` (a pseudo-terminal), else with stdout a pipe.
 */
async function watchRun(
  args: string[],
  opts: { tty: boolean; done: (out: string) => boolean; ms?: number; onTick?: () => Promise<void> },
): Promise<{ out: string; code: number | null }> {
  const quoted = [process.execPath, BIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const [cmd, argv] = opts.tty
    ? ['script', ['-q', '-e', '-f', '-c', quoted, '/dev/null']]
    : [process.execPath, [BIN, ...args]];
  const child = spawn(cmd, argv as string[], {
    cwd: ROOT,
    env: { ...process.env, HOME: cliTestHome(), TERM: 'xterm' },
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  child.stderr!.on('data', (d: Buffer) => (out += d));
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  const deadline = Date.now() + (opts.ms ?? 60_000);
  try {
    while (!opts.done(out)) {
      if (Date.now() > deadline) throw new Error(`timed out; output so far:\n${JSON.stringify(out)}`);
      if (child.exitCode !== null) throw new Error(`exited ${child.exitCode}:\n${out}`);
      await opts.onTick?.();
      await new Promise((r) => setTimeout(r, 100));
    }
    process.kill(-child.pid!, 'SIGINT');
    return { out, code: await exited };
  } finally {
    if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGKILL');
  }
}

/** The frames of a terminal output: what each cursor-home starts. */
function frames(out: string): string[] {
  return out.split(HOME).slice(1);
}

test(
  'issue 15: stat --watch redraws in place on a TTY, appends plain blocks into a pipe; ps --watch too',
  { timeout: 120_000 },
  async () => {
    const m = await startStatsMesh();
    const dataDir = mkdtempSync(join(tmpdir(), 'hexmesh-watch-'));
    try {
      await m.load(20);
      const args = ['stat', '--watch', '--interval', '200ms', '--control', m.cp.url];
      const tty = await watchRun(args, { tty: true, done: (o) => count(o, HOME) >= 4 });
      assert.equal(tty.code, 0, tty.out); // Ctrl-C ends a watch as a success
      assert.equal(count(tty.out, CLEAR), 1, 'the screen is cleared once, then redrawn in place');
      const fs = frames(tty.out);
      assert.ok(fs.length >= 4);
      for (const f of fs.slice(0, -1)) {
        // Each frame: title, one table, every line erased to its end, the rest of the screen erased.
        assert.match(f, /^Every 0\.2s: hexmesh stat {4}\d{4}-\d\d-\d\dT/);
        assert.equal(count(f, 'NAMESPACE'), 1, `one table per frame, no stacking: ${JSON.stringify(f)}`);
        assert.match(f, /ratings/);
        assert.ok(f.trimEnd().endsWith(`${ESC}[J`), JSON.stringify(f));
        for (const line of f.split(/\r?\n/).slice(0, -1))
          assert.ok(line.endsWith(`${ESC}[K`), JSON.stringify(line));
      }

      const pipe = await watchRun(args, { tty: false, done: (o) => count(o, 'NAMESPACE') >= 3 });
      assert.equal(pipe.code, 0, pipe.out);
      assert.ok(!pipe.out.includes(ESC), `no control sequences into a pipe: ${JSON.stringify(pipe.out)}`);
      const blocks = pipe.out.trimEnd().split('\n\n');
      assert.ok(blocks.length >= 3);
      for (const b of blocks.slice(0, 3)) {
        const lines = b.split('\n');
        assert.match(lines[0], /^Every 0\.2s: hexmesh stat /);
        assert.match(lines[1], /^NAMESPACE\s+SERVICE/);
      }

      // -o json into a pipe: the frames are a stream of JSON documents (for jq), no titles.
      const json = await watchRun([...args, '-o', 'json'], {
        tty: false,
        done: (o) => count(o, '"services"') >= 3,
      });
      assert.equal(json.code, 0, json.out);
      const docs = json.out.trim().split(/\n(?=\{)/);
      assert.ok(docs.length >= 3);
      for (const d of docs.slice(0, 3)) assert.equal(JSON.parse(d).windowMs, 60_000);

      // ps, which reads the mesh's state file, not the control plane.
      const ps = await watchRun(['ps', '--watch', '--interval', '200ms', '--data-dir', dataDir], {
        tty: true,
        done: (o) => count(o, HOME) >= 3,
      });
      assert.equal(ps.code, 0, ps.out);
      assert.equal(count(ps.out, CLEAR), 1);
      for (const f of frames(ps.out).slice(0, -1)) {
        assert.match(f, /^Every 0\.2s: hexmesh ps/);
        assert.equal(count(f, 'no mesh running from'), 1);
      }
      const bad = await runCli(['stat', '--watch', '--interval', 'soon', '--control', m.cp.url]);
      assert.equal(bad.code, 2, bad.stderr);
      assert.match(bad.stderr, /--interval must be a duration/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
      await m.close();
    }
  },
);

test(
  'issue 15: hexmesh top redraws in place on a TTY (one table per frame)',
  { timeout: 120_000 },
  async () => {
    const m = await startViewsMesh();
    try {
      const tty = await watchRun(['top', 'ratings', '--control', m.cp.url], {
        tty: true,
        done: (o) => frames(o).filter((f) => f.includes('/r/')).length >= 3,
        onTick: () => m.load(8),
      });
      assert.equal(count(tty.out, CLEAR), 1);
      const withRows = frames(tty.out).filter((f) => f.includes('/r/'));
      for (const f of withRows.slice(0, -1)) {
        assert.match(f, /^hexmesh top ratings: \d+ events, \d+ dropped/);
        assert.equal(count(f, 'SOURCE'), 1, JSON.stringify(f));
      }
    } finally {
      await m.close();
    }
  },
);
