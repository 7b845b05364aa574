/** `hexmesh logs SERVICE [-f]`: the app output of a service's instances (or one instance), from .hexmesh/logs/. */
import { existsSync, readdirSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { Command } from 'commander';
import { EXIT } from '../exit-codes.ts';

export function logsCommand(): Command {
  return new Command('logs')
    .description("print a service's logs (every instance, prefixed [instance]); -f follows")
    .argument(
      '<service>',
      'a service name or an instance id (web, reviews, reviews-v2-1; sidecar logs: web-1.sidecar)',
    )
    .option('-f, --follow', 'keep printing new lines')
    .option('--file <mesh.yaml>', 'the mesh file (its data dir holds the logs)')
    .option('--data-dir <dir>', 'the data dir directly')
    .action(async (service: string, opts: { follow?: boolean; file?: string; dataDir?: string }) => {
      const { resolveDataDir, readMeshState } = await import('../../runtime/state-file.ts');
      const dataDir = await resolveDataDir(opts);
      const logDir = join(dataDir, 'logs');
      const st = readMeshState(dataDir);
      const ids = new Set<string>();
      for (const i of st?.instances ?? []) if (i.service === service || i.id === service) ids.add(i.id);
      if (existsSync(logDir))
        for (const f of readdirSync(logDir)) {
          const id = f.replace(/\.log$/, '');
          if (
            f.endsWith('.log') &&
            (id === service || (!id.endsWith('.sidecar') && id.startsWith(`${service}-`) && /-\d+$/.test(id)))
          )
            ids.add(id);
        }
      const files = [...ids].sort().map((id) => ({ id, path: join(logDir, `${id}.log`), pos: 0 }));
      if (files.length === 0) {
        process.stderr.write(`hexmesh logs: no logs for ${service} in ${logDir}\n`);
        process.exitCode = EXIT.NOT_FOUND;
        return;
      }
      const prefix = files.length > 1 || !files[0].id.endsWith('.sidecar');
      const pump = async (): Promise<void> => {
        for (const f of files) {
          let h;
          try {
            h = await open(f.path, 'r');
          } catch {
            continue;
          }
          try {
            const { size } = await h.stat();
            if (size < f.pos) f.pos = 0;
            if (size === f.pos) continue;
            const buf = Buffer.alloc(size - f.pos);
            await h.read(buf, 0, buf.length, f.pos);
            const text = buf.toString('utf8');
            const end = text.lastIndexOf('\n') + 1;
            if (end === 0) continue;
            f.pos += Buffer.byteLength(text.slice(0, end));
            for (const line of text.slice(0, end - 1).split('\n'))
              process.stdout.write(prefix ? `[${f.id}] ${line}\n` : `${line}\n`);
          } finally {
            await h.close();
          }
        }
      };
      await pump();
      if (!opts.follow) return;
      for (;;) {
        await new Promise((r) => setTimeout(r, 250));
        await pump();
      }
    });
}
