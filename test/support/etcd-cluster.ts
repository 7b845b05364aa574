/**
 * A real etcd cluster on loopback for tests: N members of the Debian `etcd` binary, each
 * with its own data dir in a temp dir and client/peer ports chosen free on 127.0.0.1.
 * Members can be killed (SIGKILL, a crashed node) and restarted on the same data dir.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../src/runtime/ports.ts';

/** The etcd binary's path, or undefined when it is not installed. */
export function findEtcd(): string | undefined {
  const r = spawnSync('etcd', ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? 'etcd' : undefined;
}

/**
 * Why etcd tests cannot run, or undefined when they can. In CI (CI=true) a missing etcd is
 * a failure: `.ci/run` installs etcd-server, so its absence means the setup broke.
 */
export function etcdMissingReason(): string | undefined {
  if (findEtcd()) return undefined;
  return 'etcd is not installed (Debian package etcd-server; .ci/run installs it): apt-get install etcd-server';
}

interface Member {
  name: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  proc: ChildProcess | undefined;
  exited: Promise<void> | undefined;
  log: string[];
}

const live = new Set<EtcdCluster>();
// A test that crashes must not leave etcd processes behind.
process.once('exit', () => {
  for (const c of live) c.killAllSync();
});

export class EtcdCluster {
  readonly #root: string;
  readonly #members: Member[];
  readonly #initialCluster: string;
  readonly #token = `hexmesh-test-${randomBytes(4).toString('hex')}`;

  private constructor(root: string, members: Member[]) {
    this.#root = root;
    this.#members = members;
    this.#initialCluster = members.map((m) => `${m.name}=http://127.0.0.1:${m.peerPort}`).join(',');
  }

  /** Start `size` members and wait until every one reports healthy. */
  static async start(size = 3, timeoutMs = 30_000): Promise<EtcdCluster> {
    const reason = etcdMissingReason();
    if (reason) throw new Error(reason);
    const root = mkdtempSync(join(tmpdir(), 'hexmesh-etcd-'));
    const members: Member[] = [];
    for (let i = 0; i < size; i++) {
      members.push({
        name: `m${i}`,
        clientPort: await freePort(),
        peerPort: await freePort(),
        dataDir: join(root, `m${i}`),
        proc: undefined,
        exited: undefined,
        log: [],
      });
    }
    const cluster = new EtcdCluster(root, members);
    live.add(cluster);
    try {
      for (let i = 0; i < size; i++) cluster.#spawn(i);
      await Promise.all(members.map((_, i) => cluster.waitHealthy(i, timeoutMs)));
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /** Client endpoints of every member, `http://127.0.0.1:port`. */
  get endpoints(): string[] {
    return this.#members.map((m) => this.endpoint(this.#members.indexOf(m)));
  }

  endpoint(i: number): string {
    return `http://127.0.0.1:${this.#members[i]!.clientPort}`;
  }

  /** The member name (`m0`...) of index i. */
  name(i: number): string {
    return this.#members[i]!.name;
  }

  #spawn(i: number): void {
    const m = this.#members[i]!;
    const args = [
      `--name=${m.name}`,
      `--data-dir=${m.dataDir}`,
      `--listen-client-urls=http://127.0.0.1:${m.clientPort}`,
      `--advertise-client-urls=http://127.0.0.1:${m.clientPort}`,
      `--listen-peer-urls=http://127.0.0.1:${m.peerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${m.peerPort}`,
      `--initial-cluster=${this.#initialCluster}`,
      '--initial-cluster-state=new',
      `--initial-cluster-token=${this.#token}`,
      // Fast elections so a killed leader is replaced in well under a second.
      '--heartbeat-interval=50',
      '--election-timeout=500',
      '--logger=zap',
      '--log-outputs=stderr',
      '--log-level=warn',
    ];
    const proc = spawn('etcd', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    m.log = [];
    proc.stderr!.setEncoding('utf8');
    proc.stderr!.on('data', (chunk: string) => {
      m.log.push(chunk);
      if (m.log.length > 200) m.log.splice(0, m.log.length - 200);
    });
    m.proc = proc;
    m.exited = new Promise((resolve) => proc.once('exit', () => resolve()));
  }

  /** Wait until member i answers /health with health true. */
  async waitHealthy(i: number, timeoutMs = 30_000): Promise<void> {
    const m = this.#members[i]!;
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      if (m.proc?.exitCode !== null && m.proc?.exitCode !== undefined) {
        throw new Error(
          `etcd member ${m.name} exited with ${m.proc.exitCode}:\n${m.log.join('').slice(-3000)}`,
        );
      }
      try {
        const res = await fetch(`${this.endpoint(i)}/health`, { signal: AbortSignal.timeout(1000) });
        const body = (await res.json()) as { health?: string };
        if (body.health === 'true') return;
        last = JSON.stringify(body);
      } catch (err) {
        last = (err as Error).message;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(
      `etcd member ${m.name} not healthy after ${timeoutMs} ms (${last}):\n${m.log.join('').slice(-3000)}`,
    );
  }

  /** Open watch streams on member i (etcd's own gauge), to find the member a client watches through. */
  async watchStreams(i: number): Promise<number> {
    const res = await fetch(`${this.endpoint(i)}/metrics`, { signal: AbortSignal.timeout(2000) });
    const m = /^etcd_debugging_mvcc_watch_stream_total (\S+)$/m.exec(await res.text());
    return m ? Number(m[1]) : 0;
  }

  /** SIGKILL member i (a crash, no graceful leave) and wait for it to exit. */
  async kill(i: number): Promise<void> {
    const m = this.#members[i]!;
    if (!m.proc || m.proc.exitCode !== null || m.proc.signalCode !== null) return;
    m.proc.kill('SIGKILL');
    await m.exited;
  }

  /**
   * Freeze member i (SIGSTOP): its connections stay open and nothing answers on them, as when
   * its host died without a word. `thaw(i)` resumes it.
   */
  freeze(i: number): void {
    this.#members[i]!.proc?.kill('SIGSTOP');
  }

  thaw(i: number): void {
    this.#members[i]!.proc?.kill('SIGCONT');
  }

  /** Start member i again on its data dir and wait until it is healthy. */
  async restart(i: number, timeoutMs = 30_000): Promise<void> {
    await this.kill(i);
    this.#spawn(i);
    await this.waitHealthy(i, timeoutMs);
  }

  /** Kill every member and remove the data. Idempotent. */
  async stop(): Promise<void> {
    await Promise.all(this.#members.map((_, i) => this.kill(i)));
    live.delete(this);
    rmSync(this.#root, { recursive: true, force: true });
  }

  /** @internal used on process exit. */
  killAllSync(): void {
    for (const m of this.#members) {
      if (m.proc && m.proc.exitCode === null && m.proc.signalCode === null) m.proc.kill('SIGKILL');
    }
    rmSync(this.#root, { recursive: true, force: true });
  }
}
