/** `hexmesh control`: run a control-plane replica (REST API + discovery) over the embedded store or etcd. */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { parseDuration } from '../../config/duration.ts';
import { caOptionsFromFlags, type CaFlags } from './identity.ts';
// The store and control plane (etcd3, better-sqlite3, x509, ...) load in the action only: every
// CLI process, the proxy's included, parses this file, and must not carry them.

function listenAddress(v: string): { address: string; port: number } {
  const i = v.lastIndexOf(':');
  const port = Number(v.slice(i + 1));
  const address = i > 0 ? v.slice(0, i).replace(/^\[(.*)\]$/, '$1') : '127.0.0.1';
  if (i < 0 || !Number.isInteger(port) || port < 0 || port > 65535)
    throw new InvalidArgumentError(`expected host:port (e.g. 127.0.0.1:7070), got ${JSON.stringify(v)}`);
  return { address, port };
}

function mebibytes(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new InvalidArgumentError(`expected a whole number of MiB ≥ 1, got ${JSON.stringify(v)}`);
  return n;
}

function positiveCount(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new InvalidArgumentError(`expected a whole number ≥ 1, got ${JSON.stringify(v)}`);
  return n;
}

/** A repeatable comma-separated flag: every value of every use, blanks dropped. */
function commaList(v: string, prev: string[] = []): string[] {
  return [
    ...prev,
    ...v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  ];
}

function durationMs(v: string): number {
  const ms = parseDuration(v);
  if (ms === undefined)
    throw new InvalidArgumentError(`expected a duration like 30s or 1m, got ${JSON.stringify(v)}`);
  return ms;
}

export function controlCommand(): Command {
  return new Command('control')
    .description('run the control plane: resources, catalog, KV, watch, Prometheus SD and proxy discovery')
    .option('--listen <host:port>', 'address of the API and discovery server', listenAddress, {
      address: '127.0.0.1',
      port: 7070,
    })
    .option('--data-dir <dir>', 'directory of the embedded store', '.hexmesh')
    .option('--store <embedded|etcd://h:2379,...>', 'state store', 'embedded')
    .option(
      '--deregister-critical-after <duration>',
      'remove instances critical for longer than this (0 = never)',
      durationMs,
      0,
    )
    .option(
      '--leader-ttl <duration>',
      'leader lease TTL (takeover time after a replica dies)',
      durationMs,
      10_000,
    )
    .option('--trust-domain <domain>', 'SPIFFE trust domain of workload identities', 'hexmesh.local')
    .option('--ca-cert <file>', "import the operator's root CA certificate (PEM) instead of generating one")
    .option('--ca-key <file>', 'its private key (PEM); needed unless an intermediate is given')
    .option('--ca-intermediate-cert <file>', 'import an intermediate signed by --ca-cert')
    .option('--ca-intermediate-key <file>', 'its private key (PEM)')
    .option(
      '--ca-key-secret-file <file>',
      'seal the intermediate key in the store with this secret (or env HEXMESH_CA_KEY_SECRET); default: a random key kept in <data-dir>/ca-seal.key',
    )
    .option('--cert-ttl <duration>', 'workload certificate lifetime', durationMs, 24 * 3_600_000)
    .option(
      '--max-certs-per-identity <n>',
      'live workload certificates one identity may hold under distinct proxy ids; past it a new proxy id is refused (429) until one expires (default: 10000)',
      positiveCount,
    )
    .option(
      '--discovery-send-budget <MiB>',
      'unsent discovery data all proxies may hold together; past it the slowest proxies are cut (they resync)',
      mebibytes,
      256,
    )
    .addOption(
      new Option(
        '--auth <mode>',
        'API authentication (docs/api-security.md); off only for trusted loopback use',
      )
        .choices(['enforce', 'off'])
        .default('enforce'),
    )
    .option(
      '--tls-cert <file>',
      'serve HTTPS with this certificate (PEM); client certificates of workloads authenticate them',
    )
    .option('--tls-key <file>', 'its private key (PEM)')
    .option(
      '--tls',
      "serve HTTPS with a certificate from the control plane's own CA (renewed automatically); proxies then authenticate with their workload certificates",
    )
    .option(
      '--advertise <names>',
      'with --tls: extra DNS names / IP addresses for the serving certificate, comma-separated',
      commaList,
    )
    .option(
      '--allowed-hosts <names>',
      'DNS names a control plane listening on loopback also answers to (a reverse proxy passing its own Host), comma-separated; others are refused (DNS rebinding)',
      commaList,
    )
    .option(
      '--kubernetes',
      'mirror Kubernetes into the mesh: Services, EndpointSlices, HTTPRoutes, GRPCRoutes and hexmesh CRDs (docs/kubernetes.md)',
    )
    .option(
      '--kubeconfig <file>',
      'with --kubernetes: the kubeconfig to use (default: in-cluster service account)',
    )
    .option(
      '--inject-listen <host:port>',
      'with --kubernetes: serve the sidecar injection webhook (HTTPS, certificate from the mesh CA) here',
      listenAddress,
    )
    .option(
      '--proxy-image <image>',
      'with --inject-listen: the proxy image injected Pods run',
      'hexmesh/proxy:latest',
    )
    .option(
      '--inject-control <urls>',
      'with --inject-listen: control plane URL(s) injected proxies connect to (default http://hexmesh-control.<POD_NAMESPACE>.svc:7070)',
    )
    .addHelpText(
      'after',
      `
Several replicas may share one etcd (--store etcd://...); the embedded store serves one
process. SIGTERM or SIGINT stops gracefully: streams end, leadership is handed over.

Example:
  hexmesh control --listen 127.0.0.1:7070 --data-dir .hexmesh --deregister-critical-after 1m`,
    )
    .action(
      async (
        opts: {
          listen: { address: string; port: number };
          dataDir: string;
          store: string;
          deregisterCriticalAfter: number;
          leaderTtl: number;
          discoverySendBudget: number;
          auth: 'enforce' | 'off';
          tlsCert?: string;
          tlsKey?: string;
          tls?: boolean;
          advertise?: string[];
          allowedHosts?: string[];
          kubernetes?: boolean;
          kubeconfig?: string;
          injectListen?: { address: string; port: number };
          proxyImage: string;
          injectControl?: string;
        } & CaFlags,
      ) => {
        if ((opts.tlsCert === undefined) !== (opts.tlsKey === undefined))
          throw new InvalidArgumentError('--tls-cert and --tls-key go together');
        if (opts.tls && opts.tlsCert)
          throw new InvalidArgumentError(
            '--tls (a certificate from our CA) and --tls-cert exclude each other',
          );
        if (opts.advertise && !opts.tls) throw new InvalidArgumentError('--advertise goes with --tls');
        if (opts.kubeconfig && !opts.kubernetes)
          throw new InvalidArgumentError('--kubeconfig goes with --kubernetes');
        if (opts.injectListen && !opts.kubernetes)
          throw new InvalidArgumentError('--inject-listen goes with --kubernetes');
        const tls = opts.tlsCert
          ? { certPem: await readFile(opts.tlsCert, 'utf8'), keyPem: await readFile(opts.tlsKey!, 'utf8') }
          : opts.tls
            ? { fromCa: true as const, advertise: opts.advertise ?? [] }
            : undefined;
        // The data dir holds the store, the CA keys and credentials: ours alone (0700/0600).
        const { secureDataDir } = await import('../../store/data-dir.ts');
        secureDataDir(opts.dataDir, (line) => process.stderr.write(`hexmesh control: warning: ${line}\n`));
        const identity = await caOptionsFromFlags(opts, opts.dataDir);
        if (opts.kubernetes) {
          // A sidecar's projected ServiceAccount token (audience hexmesh) buys its certificate.
          const { TokenReviewer } = await import('../../control/kubernetes/token-review.ts');
          const reviewer = await TokenReviewer.load(opts.kubeconfig);
          identity.platformToken = (token) => reviewer.review(token);
        }
        const [{ openStore }, { ControlPlane }] = await Promise.all([
          import('../../store/open-store.ts'),
          import('../../control/control-plane.ts'),
        ]);
        const store = await openStore(opts.store, opts.dataDir);
        const cp = new ControlPlane({
          listen: opts.listen,
          store,
          deregisterCriticalAfterMs: opts.deregisterCriticalAfter,
          leaderTtlMs: opts.leaderTtl,
          discoveryOptions: { sendBudget: opts.discoverySendBudget * 1024 * 1024 },
          identity,
          auth: { mode: opts.auth },
          ...(tls && { tls }),
          ...(opts.allowedHosts && { allowedHosts: opts.allowedHosts }),
          onError: (err) =>
            process.stderr.write(`hexmesh control: ${(err as Error)?.stack ?? String(err)}\n`),
        });
        let a: { address: string; port: number };
        try {
          a = await cp.start();
        } catch (err) {
          await cp.close();
          await store.close();
          throw err;
        }
        if (opts.kubernetes) {
          const { KubernetesSource } = await import('../../control/kubernetes/kubernetes-source.ts');
          const source = new KubernetesSource({
            store,
            kubeconfig: opts.kubeconfig,
            id: cp.id,
            leaderTtlMs: opts.leaderTtl,
            // Replicas elect the mirror's writer on a Lease in their own namespace (downward API).
            lease: { namespace: process.env.POD_NAMESPACE ?? 'default' },
            log: (m) => process.stderr.write(`hexmesh control: ${m}\n`),
          });
          try {
            await source.start();
          } catch (err) {
            await cp.close();
            await store.close();
            throw err;
          }
          cp.onClose(() => source.close());
          process.stdout.write(`hexmesh control: mirroring Kubernetes at ${source.server}\n`);
          // Rollouts of Deployments (Rollout.spec.workloadRef), one acting replica by Lease.
          const { DeploymentRollouts } = await import('../../control/kubernetes/deployment-rollouts.ts');
          const rollouts = new DeploymentRollouts({
            kubeconfig: opts.kubeconfig,
            id: cp.id,
            lease: { namespace: process.env.POD_NAMESPACE ?? 'default', durationMs: opts.leaderTtl },
            log: (m) => process.stderr.write(`hexmesh control: ${m}\n`),
          });
          try {
            await rollouts.start();
          } catch (err) {
            await cp.close();
            await store.close();
            throw err;
          }
          cp.onClose(() => rollouts.close());
          if (opts.injectListen) {
            const { startInjector } = await import('../../control/kubernetes/injector-server.ts');
            const ns = process.env.POD_NAMESPACE ?? 'default';
            const injector = await startInjector({
              ca: cp.identity,
              listen: opts.injectListen,
              // The webhook's Service (hexmesh install --kubernetes), and the control plane's.
              dnsNames: ['hexmesh-injector', 'hexmesh-control'].flatMap((s) => [
                `${s}.${ns}.svc`,
                `${s}.${ns}.svc.cluster.local`,
              ]),
              image: opts.proxyImage,
              control: (opts.injectControl ?? `http://hexmesh-control.${ns}.svc:7070`).split(','),
              onError: (err) =>
                process.stderr.write(`hexmesh control: injector: ${(err as Error).message}\n`),
            }).catch(async (err: unknown) => {
              await cp.close();
              await store.close();
              throw err;
            });
            cp.onClose(() => injector.close());
            // The MutatingWebhookConfiguration's caBundle is ours to write (the manifests leave it out).
            const [{ KubeApi }, { keepWebhookCaBundle }] = await Promise.all([
              import('../../control/kubernetes/kube-api.ts'),
              import('../../control/kubernetes/webhook-ca.ts'),
            ]);
            const caKeeper = keepWebhookCaBundle(
              await KubeApi.load(opts.kubeconfig),
              async () => (await cp.identity.bundle()).pem,
              { log: (m) => process.stderr.write(`hexmesh control: ${m}\n`) },
            );
            cp.onClose(() => caKeeper.close());
            process.stdout.write(`hexmesh control: injection webhook on ${injector.url}\n`);
          }
        }
        const url = `${tls ? 'https' : 'http'}://${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}`;
        if (tls) {
          // What curl, the CLI and `hexmesh proxy --control-ca` trust the server with.
          const bundleFile = join(opts.dataDir, 'ca-bundle.pem');
          await writeFile(bundleFile, (await cp.identity.bundle()).pem, { mode: 0o644 });
          process.stdout.write(`hexmesh control: trust bundle written to ${bundleFile}\n`);
        }
        if (opts.auth === 'enforce') {
          const { ensureBootstrapCredentials } = await import('../../control/auth/bootstrap.ts');
          const file = join(opts.dataDir, 'credentials.json');
          // A wildcard listen address is no URL to call: the file names loopback (in the --tls
          // certificate's SANs), so the CLI on this host works with the file alone.
          const local = url.replace('//0.0.0.0:', '//127.0.0.1:').replace('//[::]:', '//[::1]:');
          if (await ensureBootstrapCredentials(cp.tokens, file, local))
            process.stdout.write(`hexmesh control: admin credentials written to ${file} (mode 0600)\n`);
        } else process.stderr.write('hexmesh control: API authentication is OFF (--auth off)\n');
        process.stdout.write(
          `hexmesh control: listening on ${url} (store ${store.kind}${store.kind === 'embedded' ? ` in ${opts.dataDir}` : ''})\n`,
        );
        let stopping = false;
        const stop = () => {
          if (stopping) return;
          stopping = true;
          void (async () => {
            await cp.close();
            await store.close();
            process.stdout.write('hexmesh control: stopped\n');
          })();
        };
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
      },
    );
}
