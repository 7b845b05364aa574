/**
 * `hexmesh down`: stop the mesh `hexmesh up` runs from a data dir. The supervisor stops
 * everything in order (deregister, app, sidecar; then the control plane); whatever is still
 * alive after that (the supervisor was killed, a process ignored SIGTERM) is killed by pid
 * from state.json, so nothing is left behind.
 */
import { rmSync } from 'node:fs';
import { Command } from 'commander';

export function downCommand(): Command {
  return new Command('down')
    .description('stop the mesh started by hexmesh up: every instance, sidecar and the control plane')
    .option('-f, --file <mesh.yaml>', 'the mesh file (its data dir holds the state)')
    .option('--data-dir <dir>', 'the data dir directly (default: .hexmesh beside the mesh file)')
    .option('--timeout <seconds>', 'how long the graceful stop may take before SIGKILL', '60')
    .action(async (opts: { file?: string; dataDir?: string; timeout: string }) => {
      const [
        { resolveDataDir, readMeshState, liveSupervisor, readSupervisorPid, killRecorded },
        { isAlive, isSameProcess },
        { meshPaths },
      ] = await Promise.all([
        import('../../runtime/state-file.ts'),
        import('../../runtime/processes.ts'),
        import('../../runtime/paths.ts'),
      ]);
      const dataDir = await resolveDataDir(opts);
      const before = readMeshState(dataDir);
      const sup = liveSupervisor(dataDir);
      if (!sup && !before) {
        process.stdout.write(`hexmesh down: no mesh running from ${dataDir}\n`);
        return;
      }
      // A pid is signalled only while it is still the process the mesh started (same start
      // time and boot): after a reboot or with a stale data dir, the pid may be anyone's.
      const skipped: string[] = [];
      const staleSup = readSupervisorPid(dataDir);
      if (!sup && staleSup && isAlive(staleSup.pid)) skipped.push(`supervisor pid ${staleSup.pid}`);
      if (sup) {
        process.kill(sup, 'SIGTERM');
        const deadline = Date.now() + Number(opts.timeout) * 1000;
        while (isSameProcess(sup, staleSup?.stamp) && Date.now() < deadline)
          await new Promise((r) => setTimeout(r, 100));
        if (isSameProcess(sup, staleSup?.stamp)) process.kill(sup, 'SIGKILL');
      }
      // Stragglers: what the last state file still names.
      const st = readMeshState(dataDir) ?? before;
      const left = st ? killRecorded(st) : { killed: [], skipped: [] };
      skipped.push(...left.skipped);
      const killed = left.killed.length;
      const paths = meshPaths(dataDir);
      rmSync(paths.stateFile, { force: true });
      rmSync(paths.pidFile, { force: true });
      process.stdout.write(
        `hexmesh down: stopped ${before?.instances.length ?? 0} instances and the control plane` +
          (killed ? ` (${killed} process${killed > 1 ? 'es' : ''} killed after the grace period)` : '') +
          '\n',
      );
      if (skipped.length)
        process.stdout.write(
          `hexmesh down: left alone ${skipped.length} stale entr${skipped.length > 1 ? 'ies' : 'y'} ` +
            `whose pid now belongs to another process (start time or boot differs): ${skipped.join(', ')}\n`,
        );
    });
}
