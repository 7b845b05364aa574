/**
 * `hexmesh install --kubernetes`: print the manifests of the mesh's cluster side for
 * `kubectl apply -f -` (src/deploy/kubernetes-manifests.ts).
 *
 * `hexmesh install --systemd control|sidecar -- <flags>`: render the systemd unit that runs
 * this node's control-plane replica or one app's sidecar with exactly the flags given after
 * `--` (checked by the real `hexmesh control` / `hexmesh proxy` parsers first), plus the
 * dedicated user's sysusers.d file, and write them under `--root` (default `/`).
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Command, Option } from 'commander';
import { controlCommand } from './control.ts';
import { proxyCommand } from './proxy.ts';

/**
 * Parse `args` with a command's own parser (its action replaced): every flag it knows, checked
 * as it would be. A refusal becomes a usage error of `install`.
 */
function parseFlags(install: Command, cmd: Command, args: string[]): Record<string, unknown> {
  cmd
    .exitOverride()
    .configureOutput({ writeOut: () => {}, writeErr: () => {} })
    .action(() => {});
  try {
    cmd.parse(args, { from: 'user' });
  } catch (err) {
    install.error(
      `error: not valid flags of hexmesh ${cmd.name()}: ${(err as Error).message.replace(/^error: /, '')}`,
    );
  }
  return cmd.opts();
}

export function installCommand(): Command {
  return new Command('install')
    .description(
      "print the Kubernetes manifests of the mesh (docs/kubernetes.md), or render and install systemd units for this node's control plane or an app's sidecar (docs/install.md)",
    )
    .argument('[role]', 'with --systemd: control | sidecar')
    .argument('[flags...]', 'after --: the `hexmesh control` or `hexmesh proxy` flags the unit runs with')
    .option('--systemd', 'systemd units')
    .option(
      '--kubernetes',
      'print the manifests for `kubectl apply -f -`: namespace, CRDs, RBAC, control plane, webhook',
    )
    .option('--namespace <ns>', "with --kubernetes: the control plane's namespace", 'hexmesh')
    .option(
      '--image <image>',
      'with --kubernetes: the image with the hexmesh package, for the control plane and injected proxies (default hexmesh/hexmesh:<version>)',
    )
    .option(
      '--trust-domain <domain>',
      'with --kubernetes: SPIFFE trust domain of workload identities',
      'hexmesh.local',
    )
    .option('--replicas <n>', 'with --kubernetes: control plane replicas', '1')
    .addOption(
      new Option('-o, --output <format>', 'with --kubernetes: manifest format')
        .choices(['yaml', 'json'])
        .default('yaml'),
    )
    .option('--root <dir>', 'write under this root instead of / (image builds, review)', '/')
    .option('--print', 'print the files instead of writing them')
    .option('--app-unit <unit>', "sidecar: the app's unit; the sidecar starts after it")
    .option(
      '--join-token <token>',
      'sidecar: join token for the first certificate, written to the root-only /etc/hexmesh/sidecar-<service>.env (or env HEXMESH_JOIN_TOKEN)',
    )
    .addHelpText(
      'after',
      `
Examples:
  hexmesh install --kubernetes | kubectl apply -f -
  hexmesh install --kubernetes --namespace mesh --image registry.example/hexmesh:0.1.0 -o json
  hexmesh install --systemd control -- --listen 0.0.0.0:7070 --store etcd://10.0.0.1:2379,10.0.0.2:2379 --tls --advertise 10.0.0.1
  hexmesh install --systemd sidecar --join-token hxjt.… -- --control https://10.0.0.1:7070,https://10.0.0.2:7070 \\
      --service web --app-port 8080 --advertise 10.0.0.3 --control-ca /etc/hexmesh/ca-bundle.pem

Writes etc/systemd/system/hexmesh-control.service or hexmesh-sidecar-<service>.service,
etc/sysusers.d/hexmesh.conf (the dedicated user) and, for a sidecar with a join token,
etc/hexmesh/sidecar-<service>.env (mode 0600). Then: systemd-sysusers; systemctl daemon-reload;
systemctl enable --now <unit>.`,
    )
    .action(
      async (
        role: string | undefined,
        flags: string[],
        opts: {
          systemd?: boolean;
          kubernetes?: boolean;
          namespace: string;
          image?: string;
          trustDomain: string;
          replicas: string;
          output: 'yaml' | 'json';
          root: string;
          print?: boolean;
          appUnit?: string;
          joinToken?: string;
        },
        cmd: Command,
      ) => {
        if (opts.kubernetes) {
          if (opts.systemd || role) cmd.error('error: --kubernetes takes no role and goes without --systemd');
          const replicas = Number(opts.replicas);
          if (!Number.isInteger(replicas) || replicas < 1)
            cmd.error(`error: --replicas: expected a whole number ≥ 1, got ${JSON.stringify(opts.replicas)}`);
          if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(opts.namespace))
            cmd.error(`error: --namespace: not a DNS label: ${JSON.stringify(opts.namespace)}`);
          const [k8s, { hexmeshVersion }] = await Promise.all([
            import('../../deploy/kubernetes-manifests.ts'),
            import('../build-info.ts'),
          ]);
          const objects = k8s.kubernetesManifests({
            namespace: opts.namespace,
            image: opts.image ?? `hexmesh/hexmesh:${hexmeshVersion()}`,
            trustDomain: opts.trustDomain,
            replicas,
          });
          process.stdout.write(k8s.formatManifests(objects, opts.output));
          return;
        }
        if (!opts.systemd) cmd.error('error: say what to install: --kubernetes or --systemd');
        if (role === undefined) cmd.error('error: --systemd needs a role: control or sidecar');
        if (role !== 'control' && role !== 'sidecar')
          cmd.error(`error: role must be control or sidecar, got ${JSON.stringify(role)}`);
        const systemd = await import('../../deploy/systemd.ts');
        const { HEXMESH_BIN } = await import('../../runtime/paths.ts');
        const command = [process.execPath, HEXMESH_BIN];
        const files = [systemd.sysusersFile()];
        let unitName: string;
        if (role === 'control') {
          if (flags.some((f) => f === '--data-dir' || f.startsWith('--data-dir=')))
            cmd.error(
              `error: the unit's state directory is the data dir (${systemd.CONTROL_STATE_DIR}); drop --data-dir`,
            );
          const o = parseFlags(cmd, controlCommand(), flags) as { listen: { address: string; port: number } };
          files.push(
            systemd.controlUnit({ command, args: flags, listen: `${o.listen.address}:${o.listen.port}` }),
          );
          unitName = 'hexmesh-control.service';
        } else {
          if (flags.some((f) => f === '--join-token' || f.startsWith('--join-token=')))
            cmd.error(
              'error: a join token on the command line is visible to every user (ps): use install --join-token, which writes a root-only environment file',
            );
          const o = parseFlags(cmd, proxyCommand(), flags) as {
            control?: string;
            service?: string;
            namespace?: string;
            appPort?: string;
            inbound?: string;
            outbound?: string;
            admin?: string;
          };
          if (!o.control || !o.service || !o.appPort)
            cmd.error('error: a sidecar unit needs --control, --service and --app-port after --');
          files.push(
            systemd.sidecarUnit({
              command,
              args: flags,
              service: o.service!,
              namespace: o.namespace ?? 'default',
              appPort: Number(o.appPort),
              listeners: [
                o.inbound ?? '0.0.0.0:4143',
                o.outbound ?? '127.0.0.1:4140',
                o.admin ?? '127.0.0.1:4191',
              ],
              appUnit: opts.appUnit,
            }),
          );
          const token = opts.joinToken ?? process.env.HEXMESH_JOIN_TOKEN;
          if (token) files.push(systemd.sidecarEnvFile(o.service!, token));
          unitName = systemd.sidecarUnitName(o.service!);
        }
        if (opts.print) {
          for (const f of files) process.stdout.write(`# ${join('/', f.path)}\n${f.content}\n`);
          return;
        }
        for (const f of files) {
          const path = join(opts.root, f.path);
          mkdirSync(dirname(path), { recursive: true });
          writeFileSync(path, f.content, { mode: f.mode });
          chmodSync(path, f.mode);
          process.stdout.write(`wrote ${path}\n`);
        }
        process.stdout.write(
          `next: systemd-sysusers && systemctl daemon-reload && systemctl enable --now ${unitName}\n`,
        );
      },
    );
}
