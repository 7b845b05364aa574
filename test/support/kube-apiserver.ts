/**
 * A real Kubernetes API server for tests, as controller projects use envtest: etcd and
 * kube-apiserver built from Go modules by scripts/k8s-peers.sh, started on free loopback
 * ports (kube-apiserver cannot listen on port 0) with a serving certificate from a throwaway
 * CA, a static admin token (group system:masters), service-account signing keys (so
 * TokenRequest / TokenReview work) and a kubeconfig for clients. No kubelet, scheduler or
 * controller-manager runs: tests write what those would (EndpointSlices, pod status).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { freePort } from '../../src/runtime/ports.ts';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Where scripts/k8s-peers.sh puts the binaries for the module's current go.mod and go.sum. */
export function k8sPeersBin(): string {
  if (process.env.HEXMESH_K8S_BIN) return process.env.HEXMESH_K8S_BIN;
  const mod = readFileSync(join(repo, 'scripts/k8s-peers/go.mod'), 'utf8');
  const sum = readFileSync(join(repo, 'scripts/k8s-peers/go.sum'), 'utf8');
  const release = /^\s*k8s\.io\/kubernetes\s+(v\S+)/m.exec(mod)?.[1] ?? 'unknown';
  const key = createHash('sha256').update(mod).update(sum).digest('hex').slice(0, 12);
  return join(process.env.HEXMESH_K8S_CACHE ?? '/var/cache/hexmesh-k8s', `${release}-${key}`, 'bin');
}

/**
 * Why the tests against a real API server cannot run here, or undefined when they can: the
 * binaries are not built. Under CI (CI=true) `.ci/run` has built them, so there this throws
 * instead of letting the tests skip.
 */
export function kubeApiserverMissingReason(): string | undefined {
  const bin = k8sPeersBin();
  if (existsSync(join(bin, 'kube-apiserver')) && existsSync(join(bin, 'etcd'))) return undefined;
  const reason = `kube-apiserver/etcd not built in ${bin}: run scripts/k8s-peers.sh (needs Go 1.26; .ci/run does)`;
  if (process.env.CI === 'true') throw new Error(reason);
  return reason;
}

function openssl(args: string[], cwd: string): void {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

interface Proc {
  name: string;
  proc: ChildProcess;
  log: string[];
  exited: Promise<void>;
}

const live = new Set<KubeApiServer>();
// A test that crashes must not leave the servers behind.
process.once('exit', () => {
  for (const s of live) s.killAllSync();
});

export interface KubeApiServerOptions {
  /** Extra kube-apiserver flags (`--name=value`). */
  args?: string[];
  /** Time to become ready (default 180 s: a loaded 2-core machine is slow to start it). */
  timeoutMs?: number;
}

export class KubeApiServer {
  /** `https://127.0.0.1:<port>` */
  readonly url: string;
  /** Bearer token of `admin` (group system:masters). */
  readonly token: string;
  /** The serving CA (PEM). */
  readonly caPem: string;
  /** A kubeconfig file for the admin, context `hexmesh-test`. */
  readonly kubeconfig: string;
  /** The service-account token issuer (`--service-account-issuer`). */
  readonly issuer = 'https://kubernetes.default.svc.cluster.local';
  readonly #dir: string;
  readonly #procs: Proc[] = [];

  private constructor(dir: string, url: string, token: string, caPem: string, kubeconfig: string) {
    this.#dir = dir;
    this.url = url;
    this.token = token;
    this.caPem = caPem;
    this.kubeconfig = kubeconfig;
  }

  /** Start etcd and kube-apiserver and wait until `/readyz` answers 200. */
  static async start(opts: KubeApiServerOptions = {}): Promise<KubeApiServer> {
    const reason = kubeApiserverMissingReason();
    if (reason) throw new Error(reason);
    // The ports are free when picked, not reserved: another process may take one before the
    // servers bind it. Such a start fails fast (a process exits); try again with new ports.
    for (let attempt = 1; ; attempt++) {
      try {
        return await KubeApiServer.#start(opts);
      } catch (err) {
        if (attempt >= 3 || !/address already in use/.test((err as Error).message)) throw err;
      }
    }
  }

  static async #start(opts: KubeApiServerOptions): Promise<KubeApiServer> {
    const bin = k8sPeersBin();
    const dir = mkdtempSync(join(tmpdir(), 'hexmesh-kube-'));
    const pki = makePki(dir);
    const token = randomBytes(24).toString('hex');
    writeFileSync(join(dir, 'tokens.csv'), `${token},admin,admin-uid,"system:masters"\n`, { mode: 0o600 });
    const [etcdClient, etcdPeer, port] = [await freePort(), await freePort(), await freePort()];
    const url = `https://127.0.0.1:${port}`;
    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(kubeconfig, kubeconfigYaml(url, pki.caPem, token), { mode: 0o600 });
    const server = new KubeApiServer(dir, url, token, pki.caPem, kubeconfig);
    live.add(server);
    try {
      server.#spawn('etcd', join(bin, 'etcd'), [
        `--data-dir=${join(dir, 'etcd')}`,
        `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
        `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
        `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
        `--initial-cluster=default=http://127.0.0.1:${etcdPeer}`,
        '--unsafe-no-fsync',
        '--log-level=warn',
      ]);
      server.#spawn('kube-apiserver', join(bin, 'kube-apiserver'), [
        `--etcd-servers=http://127.0.0.1:${etcdClient}`,
        '--bind-address=127.0.0.1',
        '--advertise-address=127.0.0.1',
        `--secure-port=${port}`,
        `--tls-cert-file=${pki.certFile}`,
        `--tls-private-key-file=${pki.keyFile}`,
        `--cert-dir=${join(dir, 'certs')}`,
        `--token-auth-file=${join(dir, 'tokens.csv')}`,
        '--authorization-mode=RBAC',
        '--service-cluster-ip-range=10.96.0.0/16',
        '--allow-privileged=true',
        // No controller-manager creates the `default` ServiceAccount of a namespace (as envtest).
        '--disable-admission-plugins=ServiceAccount',
        `--service-account-issuer=${server.issuer}`,
        `--service-account-key-file=${pki.saPublicFile}`,
        `--service-account-signing-key-file=${pki.saKeyFile}`,
        '--enable-priority-and-fairness=false',
        '--profiling=false',
        '--v=0',
        ...(opts.args ?? []),
      ]);
      await server.#waitReady(opts.timeoutMs ?? 180_000);
    } catch (err) {
      await server.stop();
      throw err;
    }
    return server;
  }

  #spawn(name: string, file: string, args: string[]): void {
    const proc = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const log: string[] = [];
    const keep = (chunk: string) => {
      log.push(chunk);
      if (log.length > 300) log.splice(0, log.length - 300);
    };
    proc.stdout!.setEncoding('utf8').on('data', keep);
    proc.stderr!.setEncoding('utf8').on('data', keep);
    this.#procs.push({ name, proc, log, exited: new Promise((r) => proc.once('exit', () => r())) });
  }

  /** The last lines each process wrote (for failure messages). */
  logs(): string {
    return this.#procs.map((p) => `--- ${p.name}\n${p.log.join('').slice(-4000)}`).join('\n');
  }

  async #waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      for (const p of this.#procs)
        if (p.proc.exitCode !== null || p.proc.signalCode !== null)
          throw new Error(`${p.name} exited (${p.proc.exitCode ?? p.proc.signalCode}):\n${this.logs()}`);
      try {
        const r = await this.request('GET', '/readyz');
        if (r.status === 200) return;
        last = `${r.status} ${r.body.slice(-500)}`;
      } catch (err) {
        last = (err as Error).message;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`kube-apiserver not ready after ${timeoutMs} ms (${last}):\n${this.logs()}`);
  }

  /** One request to the API server as admin (JSON in and out). */
  request(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; body: string; json: () => unknown }> {
    const data = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = https.request(
        `${this.url}${path}`,
        {
          method,
          ca: this.caPem,
          headers: {
            authorization: `Bearer ${this.token}`,
            accept: 'application/json',
            ...(data !== undefined ? { 'content-type': 'application/json' } : {}),
            ...headers,
          },
          timeout: 30_000,
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, body: text, json: () => JSON.parse(text) as unknown }),
          );
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timeout`)));
      req.on('error', reject);
      req.end(data);
    });
  }

  /** Like request, but throws unless the status is 2xx; returns the parsed body. */
  async must<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> {
    const r = await this.request(method, path, body);
    if (r.status < 200 || r.status > 299) throw new Error(`${method} ${path}: ${r.status} ${r.body}`);
    return r.json() as T;
  }

  /**
   * Create every CustomResourceDefinition of a YAML file (several documents) and wait until
   * the API server serves each one (condition Established).
   */
  async installCrds(file: string): Promise<string[]> {
    const docs = parseAllDocuments(readFileSync(file, 'utf8'))
      .map((d) => d.toJS() as { kind?: string; metadata: { name: string } } | null)
      .filter(
        (d): d is { kind: string; metadata: { name: string } } => d?.kind === 'CustomResourceDefinition',
      );
    const base = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions';
    for (const d of docs) await this.must('POST', base, d);
    for (const d of docs) {
      const deadline = Date.now() + 60_000;
      for (;;) {
        const crd = await this.must<{ status?: { conditions?: { type: string; status: string }[] } }>(
          'GET',
          `${base}/${d.metadata.name}`,
        );
        if (crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) break;
        if (Date.now() > deadline) throw new Error(`CRD ${d.metadata.name} not established`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    return docs.map((d) => d.metadata.name);
  }

  /** Kill both processes and remove the data. Idempotent. */
  async stop(): Promise<void> {
    live.delete(this);
    for (const p of [...this.#procs].reverse()) {
      if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL');
      await p.exited;
    }
    rmSync(this.#dir, { recursive: true, force: true });
  }

  /** @internal used on process exit. */
  killAllSync(): void {
    for (const p of this.#procs)
      if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL');
  }
}

function makePki(dir: string): {
  caPem: string;
  certFile: string;
  keyFile: string;
  saKeyFile: string;
  saPublicFile: string;
} {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl(
    [
      'req',
      '-x509',
      ...ec,
      '-days',
      '2',
      '-subj',
      '/CN=hexmesh test kube CA',
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
    ],
    dir,
  );
  openssl(
    ['req', ...ec, '-subj', '/CN=kube-apiserver', '-keyout', 'serving.key', '-out', 'serving.csr'],
    dir,
  );
  writeFileSync(
    join(dir, 'serving.ext'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n',
  );
  openssl(
    [
      'x509',
      '-req',
      '-in',
      'serving.csr',
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      'serving.ext',
      '-out',
      'serving.crt',
    ],
    dir,
  );
  const sa = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(join(dir, 'sa.key'), sa.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(join(dir, 'sa.pub'), sa.publicKey.export({ type: 'spki', format: 'pem' }));
  return {
    caPem: readFileSync(join(dir, 'ca.crt'), 'utf8'),
    certFile: join(dir, 'serving.crt'),
    keyFile: join(dir, 'serving.key'),
    saKeyFile: join(dir, 'sa.key'),
    saPublicFile: join(dir, 'sa.pub'),
  };
}

function kubeconfigYaml(url: string, caPem: string, token: string): string {
  const ca = Buffer.from(caPem).toString('base64');
  return `apiVersion: v1
kind: Config
clusters:
- name: hexmesh-test
  cluster:
    server: ${url}
    certificate-authority-data: ${ca}
users:
- name: admin
  user:
    token: ${token}
contexts:
- name: hexmesh-test
  context:
    cluster: hexmesh-test
    user: admin
current-context: hexmesh-test
`;
}
