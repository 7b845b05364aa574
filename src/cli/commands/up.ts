/**
 * `hexmesh up -f mesh.yaml`: run a whole mesh on this machine — the control plane on its
 * embedded store, then every instance beside its own sidecar — supervised, in the
 * foreground (Ctrl-C stops it all) or detached (`-d`; `hexmesh down` stops it).
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import { EXIT } from '../exit-codes.ts';

interface UpOpts {
  file: string;
  detach?: boolean;
  once?: boolean;
  dataDir?: string;
  controlListen?: string;
  timeout: string;
  /** false with --no-context. */
  context: string | false | undefined;
}

/** Set in the detached supervisor's environment: it is the process that runs the mesh. */
const DAEMON_ENV = 'HEXMESH_UP_SUPERVISOR';

export function upCommand(): Command {
  return new Command('up')
    .description(
      'run the mesh of a mesh file: control plane, then every instance with its sidecar, supervised',
    )
    .requiredOption('-f, --file <mesh.yaml>', 'the mesh file (see docs/runtime.md)')
    .option('-d, --detach', 'run in the background (a supervisor process); stop with `hexmesh down`')
    .option(
      '--once',
      'start, check every instance is healthy and the smoke test passes, stop; exit 0 if all was well',
    )
    .option(
      '--data-dir <dir>',
      "store, logs and state (default: the file's controlPlane.dataDir, .hexmesh beside it)",
    )
    .option(
      '--control-listen <host:port>',
      "the control plane's address (default: the file's controlPlane.listen)",
    )
    .option('--timeout <duration>', 'with --once or -d: how long instances may take to become healthy', '90s')
    .option(
      '--context <name>',
      "the context added to your credentials file (~/.hexmesh/credentials, env HEXMESH_CREDENTIALS) and made current, so the CLI's verbs reach this mesh (default: the mesh file's directory name)",
    )
    .option('--no-context', 'leave your credentials file alone')
    .addHelpText(
      'after',
      `
Every app gets HEXMESH_SERVICE, HEXMESH_OUTBOUND, HEXMESH_ADMIN, HTTP_PROXY/http_proxy,
NO_PROXY/no_proxy and PORT (docs/runtime.md). Logs: .hexmesh/logs/<instance>.log.

Example:
  hexmesh up -f examples/shop/mesh.yaml         # foreground; Ctrl-C stops everything
  hexmesh up -f examples/shop/mesh.yaml -d && hexmesh ps -f examples/shop/mesh.yaml`,
    )
    .action(async (opts: UpOpts) => {
      const [{ loadMeshFile }, { parseDuration }] = await Promise.all([
        import('../../runtime/mesh-file.ts'),
        import('../../config/duration.ts'),
      ]);
      const timeoutMs = parseDuration(opts.timeout);
      if (timeoutMs === undefined)
        throw new HexmeshError(
          'HEXMESH_ERR_CONFIG_INVALID',
          `--timeout: expected a duration, got ${opts.timeout}`,
        );
      const mesh = await loadMeshFile(opts.file);
      if (opts.detach && !process.env[DAEMON_ENV]) return detach(opts, mesh, timeoutMs);
      await runHere(opts, mesh, timeoutMs);
    });
}

async function runHere(
  opts: UpOpts,
  mesh: import('../../runtime/mesh-file.ts').MeshFile,
  timeoutMs: number,
): Promise<void> {
  const [{ MeshRunner }, { liveSupervisor }] = await Promise.all([
    import('../../runtime/mesh-runner.ts'),
    import('../../runtime/state-file.ts'),
  ]);
  const dataDir = opts.dataDir ?? mesh.controlPlane.dataDir;
  const running = liveSupervisor(dataDir);
  if (running && running !== process.pid)
    throw new HexmeshError(
      'HEXMESH_ERR_CONFLICT',
      `a mesh is already running from ${dataDir} (supervisor pid ${running}); run hexmesh down first`,
    );
  const runner = new MeshRunner(mesh, {
    ...(opts.dataDir ? { dataDir: opts.dataDir } : {}),
    ...(opts.controlListen ? { controlListen: opts.controlListen } : {}),
    onLog: (l) => process.stdout.write(`${l}\n`),
  });
  let stopping = false;
  const stop = (code: number) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write('hexmesh up: stopping...\n');
    void runner.stop().then(() => {
      process.stdout.write('hexmesh up: stopped\n');
      process.exit(code);
    });
  };
  process.once('SIGINT', () => stop(0));
  process.once('SIGTERM', () => stop(0));
  await runner.start();
  process.stdout.write(
    `hexmesh up: control plane on ${runner.controlUrl}; ${runner.runtime.list().length} instances started\n`,
  );
  // A detached run's context is written by the `up -d` that started this supervisor.
  const remembered =
    !opts.once && !process.env[DAEMON_ENV]
      ? await rememberContext(opts, mesh, runner.controlUrl, runner.credentialsFile)
      : false;
  if (opts.once) {
    try {
      await runner.waitHealthy(timeoutMs);
      process.stdout.write('hexmesh up: every instance is passing\n');
      const smoke = await runner.smokeTest();
      if (smoke) {
        process.stdout.write(
          `hexmesh up: smoke test ${mesh.smokeTest!.service}${mesh.smokeTest!.path} → ${smoke.status} ${smoke.body}\n`,
        );
        if (!smoke.ok) throw new HexmeshError('HEXMESH_ERR_INTERNAL', 'the smoke test failed');
      }
      process.stdout.write(
        summary(runner.runtime.list(), mesh, runner.controlUrl, runner.credentialsFile, false),
      );
      await runner.stop();
    } catch (err) {
      await runner.stop();
      throw err;
    }
    return;
  }
  try {
    await runner.waitHealthy(timeoutMs);
  } catch (err) {
    process.stdout.write(`hexmesh up: ${(err as Error).message} (still supervising; see hexmesh ps)\n`);
  }
  process.stdout.write(
    summary(runner.runtime.list(), mesh, runner.controlUrl, runner.credentialsFile, remembered),
  );
  if (!process.env[DAEMON_ENV]) process.stdout.write('Ctrl-C stops everything.\n');
  await new Promise(() => {});
}

function summary(
  list: import('../../runtime/runtime.ts').InstanceInfo[],
  mesh: import('../../runtime/mesh-file.ts').MeshFile,
  controlUrl: string,
  credentials: string,
  /** The user's credentials file has this mesh as its current context: no flags needed. */
  remembered: boolean,
): string {
  const lines = ['', 'The mesh is up:'];
  for (const s of mesh.services.filter((x) => x.public)) {
    const i = list.find((x) => x.service === s.name);
    if (i) lines.push(`  ${s.name}: http://127.0.0.1:${i.appPort}/`);
  }
  const f = mesh.file;
  // The API needs the admin token `hexmesh control` wrote to the data dir (docs/api-security.md).
  const api = remembered ? '' : ` --control ${controlUrl} --credentials ${credentials}`;
  lines.push(
    '',
    `API credentials (admin): ${credentials}`,
    '',
    'Try:',
    `  hexmesh ps -f ${f}`,
    `  hexmesh logs --file ${f} reviews`,
    `  hexmesh services${api}`,
    `  hexmesh stat${api}`,
    `  hexmesh down -f ${f}`,
    '',
  );
  return lines.join('\n');
}

/**
 * Add (or refresh) this mesh's context in the user's credentials file and make it current, as
 * `kind create cluster` writes a kubeconfig context: the quick start's `hexmesh services` then
 * works with no flag or export. The token is the bootstrap admin token `hexmesh control`
 * wrote to the data dir (the supervisor in a detached run writes it too; both are the same).
 */
async function rememberContext(
  opts: UpOpts,
  mesh: import('../../runtime/mesh-file.ts').MeshFile,
  controlUrl: string,
  dataDirCredentials: string,
): Promise<boolean> {
  if (opts.context === false) return false;
  const [
    { readCredentials, userCredentialsPath, writeCredentials },
    { BOOTSTRAP_CONTEXT },
    { basename, dirname, resolve },
  ] = await Promise.all([
    import('../client/credentials.ts'),
    import('../../control/auth/bootstrap.ts'),
    import('node:path'),
  ]);
  const name = opts.context ?? basename(dirname(resolve(mesh.file)));
  const target = userCredentialsPath();
  try {
    const ctx = readCredentials(dataDirCredentials).contexts.find((c) => c.name === BOOTSTRAP_CONTEXT);
    if (!ctx) return false;
    await writeCredentials(target, { name, control: controlUrl, token: ctx.token });
    process.stdout.write(`hexmesh up: context ${name} (${controlUrl}) is current in ${target}\n`);
    return true;
  } catch (err) {
    // The mesh runs either way; the verbs then need --credentials (printed below).
    process.stdout.write(`hexmesh up: could not update ${target}: ${(err as Error).message}\n`);
    return false;
  }
}

/** Start the supervisor in the background, wait until the mesh is healthy (or failed), print, return. */
async function detach(
  opts: UpOpts,
  mesh: import('../../runtime/mesh-file.ts').MeshFile,
  timeoutMs: number,
): Promise<void> {
  const [{ readMeshState, liveSupervisor }, { HEXMESH_BIN }, { isAlive }, { credentialsFile }] =
    await Promise.all([
      import('../../runtime/state-file.ts'),
      import('../../runtime/paths.ts'),
      import('../../runtime/processes.ts'),
      import('../../runtime/bootstrap-token.ts'),
    ]);
  const dataDir = opts.dataDir ?? mesh.controlPlane.dataDir;
  const running = liveSupervisor(dataDir);
  if (running)
    throw new HexmeshError(
      'HEXMESH_ERR_CONFLICT',
      `a mesh is already running from ${dataDir} (supervisor pid ${running})`,
    );
  mkdirSync(join(dataDir, 'logs'), { recursive: true });
  const logFile = join(dataDir, 'logs', 'supervisor.log');
  const fd = openSync(logFile, 'a');
  const args = [HEXMESH_BIN, 'up', '-f', opts.file, '--timeout', opts.timeout, '--data-dir', dataDir];
  if (opts.controlListen) args.push('--control-listen', opts.controlListen);
  const child = spawn(process.execPath, args, {
    detached: true,
    stdio: ['ignore', fd, fd],
    env: { ...process.env, [DAEMON_ENV]: '1' },
  });
  closeSync(fd);
  child.unref();
  const pid = child.pid!;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await new Promise((r) => setTimeout(r, 250));
    const st = readMeshState(dataDir);
    if (!isAlive(pid) || st?.phase === 'failed') {
      process.stderr.write(
        `hexmesh up: the supervisor failed${st?.error ? `: ${st.error}` : ''} (see ${logFile})\n`,
      );
      process.exitCode = EXIT.RUNTIME;
      return;
    }
    if (st?.phase === 'running' && st.supervisorPid === pid) {
      const healthy = st.instances.every((i) => i.health === 'passing');
      if (healthy || Date.now() > deadline) {
        process.stdout.write(
          `hexmesh up: running in the background (supervisor pid ${pid}, control plane ${st.controlUrl}); ` +
            `${st.instances.filter((i) => i.health === 'passing').length}/${st.instances.length} instances passing\n` +
            `logs: ${join(dataDir, 'logs')}; stop with: hexmesh down -f ${opts.file}\n`,
        );
        // The same URLs and credentials hint as a foreground run (the supervisor's own copy
        // goes to its log, which nobody reads at this point).
        const remembered = await rememberContext(opts, mesh, st.controlUrl, credentialsFile(dataDir));
        process.stdout.write(
          summary(st.instances, mesh, st.controlUrl, credentialsFile(dataDir), remembered),
        );
        return;
      }
    }
    if (Date.now() > deadline) {
      process.stderr.write(
        `hexmesh up: the supervisor did not report within ${timeoutMs} ms (see ${logFile})\n`,
      );
      process.exitCode = EXIT.RUNTIME;
      return;
    }
  }
}
