/**
 * Test support: run the real `hexmesh` CLI (`node bin/hexmesh.js ...`) as a child process,
 * either to completion or as a long-running proxy whose bound ports are read from the
 * line it prints at start.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = join(ROOT, 'bin', 'hexmesh.js');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * HOME for the CLIs tests run: an empty directory of this test process, so `hexmesh up` (which
 * adds a context to ~/.hexmesh/credentials) never writes the real user's file and no verb
 * reads it.
 */
let testHome: string | undefined;
export function cliTestHome(): string {
  testHome ??= mkdtempSync(join(tmpdir(), 'hexmesh-test-home-'));
  return testHome;
}
process.once('exit', () => {
  if (testHome) rmSync(testHome, { recursive: true, force: true });
});

/** Run `hexmesh <args>` to completion (killed after `timeoutMs`). */
export function runCli(args: string[], timeoutMs = 30_000): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: ROOT,
      env: { ...process.env, HOME: cliTestHome() },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** A `hexmesh proxy --config FILE` process. */
export class CliProxy {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  outboundPort = 0;
  inboundPort = 0;
  adminPort = 0;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(configFile: string) {
    this.child = spawn(process.execPath, [BIN, 'proxy', '--config', configFile], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout!.on('data', (d: Buffer) => (this.stdout += d));
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr += d));
    this.exited = new Promise((resolve) =>
      this.child.on('exit', (code, signal) => resolve({ code, signal })),
    );
  }

  /** Spawn and wait until the start line (all listeners bound) is printed. */
  static async start(configFile: string, timeoutMs = 20_000): Promise<CliProxy> {
    const p = new CliProxy(configFile);
    const line = await p.waitFor(
      'stdout',
      /outbound=[^:\s]+:(\d+) inbound=[^:\s]+:(\d+) admin=[^:\s]+:(\d+)/,
      timeoutMs,
    );
    p.outboundPort = Number(line[1]);
    p.inboundPort = Number(line[2]);
    p.adminPort = Number(line[3]);
    return p;
  }

  get adminUrl(): string {
    return `http://127.0.0.1:${this.adminPort}`;
  }

  get outboundUrl(): string {
    return `http://127.0.0.1:${this.outboundPort}`;
  }

  /** Wait until stdout or stderr matches `re`; rejects on timeout or early exit. */
  async waitFor(stream: 'stdout' | 'stderr', re: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    void this.exited.then(() => (exited = true));
    for (;;) {
      const m = this[stream].match(re);
      if (m) return m;
      if (exited || Date.now() > deadline)
        throw new Error(
          `${stream} never matched ${re} (${exited ? 'process exited' : 'timeout'})\nstdout: ${this.stdout}\nstderr: ${this.stderr}`,
        );
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** Wait for the exit; SIGKILL and reject after `timeoutMs`. */
  async waitExit(timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.child.kill('SIGKILL');
        reject(new Error(`proxy did not exit within ${timeoutMs} ms\nstderr: ${this.stderr}`));
      }, timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Kill now (cleanup). */
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }
}
