/**
 * Hosts for multi-host tests: Linux network namespaces, each with its own address on one
 * private subnet, joined by a bridge that lives in a namespace of its own (so nothing of
 * this network is reachable from, or routed to, the machine's real interfaces). Needs root
 * and `ip` (iproute2). Processes are started inside a host with `ip netns exec`; a host can
 * be killed whole (link cut, every process SIGKILLed). Everything is removed on `destroy()`,
 * and on process exit if a test forgot.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';

/** Why namespaces cannot be used here, or undefined when they can. */
export function netnsMissingReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  if (r.status !== 0) return `ip netns does not work here: ${r.stderr || r.error?.message}`;
  return undefined;
}

function ip(...args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
}

export interface Host {
  /** Short name, `a`, `b`, ... */
  name: string;
  /** The namespace's name. */
  netns: string;
  /** Its address on the shared subnet. */
  ip: string;
}

export interface HostProcess {
  host: Host;
  label: string;
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

const live = new Set<HostNetwork>();
process.once('exit', () => {
  for (const n of live) n.destroySync();
});

export class HostNetwork {
  readonly hosts: Host[];
  readonly #switch: string;
  readonly #procs: HostProcess[] = [];
  #destroyed = false;

  private constructor(hosts: Host[], sw: string) {
    this.hosts = hosts;
    this.#switch = sw;
  }

  /**
   * `count` hosts on `subnet` (three octets, e.g. `10.233.7`): host i gets `<subnet>.<i+1>/24`.
   * The bridge is in a namespace of its own; each host has a veth pair into it and loopback up.
   */
  static create(count: number, subnet: string): HostNetwork {
    const id = randomBytes(3).toString('hex');
    const sw = `hx${id}-sw`;
    const hosts: Host[] = Array.from({ length: count }, (_, i) => ({
      name: String.fromCharCode(97 + i),
      netns: `hx${id}-${String.fromCharCode(97 + i)}`,
      ip: `${subnet}.${i + 1}`,
    }));
    const net = new HostNetwork(hosts, sw);
    live.add(net);
    try {
      ip('netns', 'add', sw);
      ip('-n', sw, 'link', 'add', 'br0', 'type', 'bridge');
      ip('-n', sw, 'link', 'set', 'br0', 'up');
      hosts.forEach((h, i) => {
        ip('netns', 'add', h.netns);
        ip('-n', h.netns, 'link', 'set', 'lo', 'up');
        // The pair is made inside the host, then one end moves to the switch.
        ip('-n', h.netns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `p${i}`);
        ip('-n', h.netns, 'link', 'set', `p${i}`, 'netns', sw);
        ip('-n', sw, 'link', 'set', `p${i}`, 'master', 'br0');
        ip('-n', sw, 'link', 'set', `p${i}`, 'up');
        ip('-n', h.netns, 'addr', 'add', `${h.ip}/24`, 'dev', 'eth0');
        ip('-n', h.netns, 'link', 'set', 'eth0', 'up');
      });
    } catch (err) {
      net.destroySync();
      throw err;
    }
    return net;
  }

  host(name: string): Host {
    const h = this.hosts.find((x) => x.name === name);
    if (!h) throw new Error(`no host ${name}`);
    return h;
  }

  /** Start `sh -c <command>` inside `host` with `env` added to this process's environment. */
  start(
    host: Host,
    label: string,
    command: string,
    env: Record<string, string> = {},
    cwd?: string,
  ): HostProcess {
    const child = spawn('ip', ['netns', 'exec', host.netns, 'sh', '-c', command], {
      cwd,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const chunks: string[] = [];
    const keep = (d: Buffer) => {
      chunks.push(d.toString());
      if (chunks.length > 400) chunks.splice(0, chunks.length - 400);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    const p = { host, label, child, output: () => chunks.join(''), exited };
    this.#procs.push(p);
    return p;
  }

  /** Run `sh -c <command>` inside `host` to completion (killed after `timeoutMs`). */
  run(
    host: Host,
    command: string,
    env: Record<string, string> = {},
    timeoutMs = 60_000,
    cwd?: string,
  ): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = spawn('ip', ['netns', 'exec', host.netns, 'sh', '-c', command], {
        cwd,
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d));
      child.stderr.on('data', (d: Buffer) => (stderr += d));
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
  }

  /** Every process inside a host's namespace (whoever started it). */
  pids(host: Host): number[] {
    const r = spawnSync('ip', ['netns', 'pids', host.netns], { encoding: 'utf8' });
    return r.stdout
      .split('\n')
      .map((s) => Number(s.trim()))
      .filter((n) => n > 0);
  }

  /**
   * The host dies: its link goes down first (nothing more leaves it, not even a FIN or RST,
   * as when a machine loses power), then every process in it is SIGKILLed. Resolves once none
   * is left (a SIGKILLed process still shows for a moment; one may fork meanwhile), or after 10 s.
   */
  async killHost(host: Host): Promise<void> {
    const i = this.hosts.indexOf(host);
    ip('-n', this.#switch, 'link', 'set', `p${i}`, 'down');
    ip('-n', host.netns, 'link', 'set', 'eth0', 'down');
    const deadline = Date.now() + 10_000;
    for (;;) {
      const pids = this.pids(host);
      if (pids.length === 0 || Date.now() > deadline) return;
      for (const pid of pids)
        try {
          process.kill(pid, 'SIGKILL');
        } catch {}
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Output of every process started so far, for a failure message. */
  logs(): string {
    return this.#procs
      .map(
        (p) =>
          `--- ${p.host.name} ${p.label} (exit ${p.child.exitCode ?? p.child.signalCode ?? 'running'})\n${p.output().slice(-3000)}`,
      )
      .join('\n');
  }

  /** Kill every process in every namespace, then delete the namespaces. Idempotent. */
  destroySync(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    live.delete(this);
    for (const p of this.#procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
    for (const h of this.hosts) {
      for (let round = 0; round < 5; round++) {
        const pids = this.pids(h);
        if (pids.length === 0) break;
        for (const pid of pids)
          try {
            process.kill(pid, 'SIGKILL');
          } catch {}
        spawnSync('sleep', ['0.1']);
      }
      spawnSync('ip', ['netns', 'del', h.netns]);
    }
    spawnSync('ip', ['netns', 'del', this.#switch]);
  }
}

/**
 * One app host for a test in the root namespace: a network namespace joined to this one by a
 * veth pair (`<subnet>.1` here, `<subnet>.2` there, a /30). Apps started in it are reached at
 * a non-loopback address — which is what a Kubernetes EndpointSlice must name (the API server
 * refuses 127.0.0.0/8) — while the traffic stays between this machine and a namespace the
 * test made itself. Needs root and `ip`.
 */
export class AppHost {
  readonly netns: string;
  /** The app host's address, reachable from the test's namespace. */
  readonly ip: string;
  readonly #link: string;
  readonly #apps: ChildProcess[] = [];
  #destroyed = false;

  private constructor(netns: string, link: string, ip: string) {
    this.netns = netns;
    this.#link = link;
    this.ip = ip;
  }

  /** `subnet`: three octets of a /30 no other test uses, e.g. `10.233.250`. */
  static create(subnet: string): AppHost {
    const id = randomBytes(3).toString('hex');
    const host = new AppHost(`hx${id}-app`, `hx${id}r`, `${subnet}.2`);
    liveApps.add(host);
    try {
      ip('netns', 'add', host.netns);
      ip('-n', host.netns, 'link', 'set', 'lo', 'up');
      ip('link', 'add', host.#link, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host.netns);
      ip('addr', 'add', `${subnet}.1/30`, 'dev', host.#link);
      ip('link', 'set', host.#link, 'up');
      ip('-n', host.netns, 'addr', 'add', `${subnet}.2/30`, 'dev', 'eth0');
      ip('-n', host.netns, 'link', 'set', 'eth0', 'up');
    } catch (err) {
      host.destroySync();
      throw err;
    }
    return host;
  }

  /** An HTTP server inside the namespace answering every request with `body`. */
  async serve(body: string): Promise<{ port: number; close(): Promise<void> }> {
    const script = `const s=require('node:http').createServer((q,r)=>{q.resume();r.end(${JSON.stringify(body)})});s.listen(0,'0.0.0.0',()=>console.log('port '+s.address().port));`;
    const child = spawn('ip', ['netns', 'exec', this.netns, process.execPath, '-e', script], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#apps.push(child);
    const port = await new Promise<number>((resolve, reject) => {
      let out = '';
      let err = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d;
        const m = /port (\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      child.stderr!.on('data', (d: Buffer) => (err += d));
      child.once('exit', (code) => reject(new Error(`app in ${this.netns} exited ${code}: ${err}`)));
    });
    return {
      port,
      close: async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const gone = new Promise((r) => child.once('exit', r));
        child.kill('SIGKILL');
        await gone;
      },
    };
  }

  /** Kill the apps, delete the namespace (the veth pair goes with it). Idempotent. */
  destroySync(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    liveApps.delete(this);
    for (const c of this.#apps) if (c.exitCode === null) c.kill('SIGKILL');
    spawnSync('ip', ['netns', 'del', this.netns]);
    spawnSync('ip', ['link', 'del', this.#link]);
  }
}

const liveApps = new Set<AppHost>();
process.once('exit', () => {
  for (const h of liveApps) h.destroySync();
});
