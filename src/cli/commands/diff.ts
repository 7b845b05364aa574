/**
 * `hexmesh diff -f FILE`: what `apply -f FILE` would change, as `kubectl diff`: a unified
 * diff (the system `diff -u`, or `HEXMESH_EXTERNAL_DIFF`) of each resource in force against
 * the file's version; exit 0 when nothing would change, 1 when something would, other codes
 * on errors. Files are validated offline first (the schemas of the API), so an invalid file
 * is refused as `apply` refuses it.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { stringify } from 'yaml';
import { ConfigError } from '../../config/load.ts';
import { canonicalJson, validateResources, type StoredDoc } from '../../control/validate-resource.ts';
import { ControlApiError } from '../client/control-client.ts';
import {
  CliFailure,
  problemLine,
  runWithClient,
  withControl,
  type ControlOpts,
} from '../client/command-support.ts';
import { EXIT } from '../exit-codes.ts';
import { loadDocuments } from './resources.ts';

/** The user-owned part of a resource: what apply writes (no resourceVersion, no timestamps). */
function comparable(d: StoredDoc | undefined): unknown {
  if (!d) return undefined;
  const { resourceVersion: _rv, creationTimestamp: _ct, ...metadata } = d.metadata;
  return { apiVersion: d.apiVersion, kind: d.kind, metadata, spec: d.spec };
}

const yaml = (v: unknown) => (v === undefined ? '' : stringify(v, { sortMapEntries: true }));

export function diffCommand(): Command {
  return withControl(
    new Command('diff')
      .description(
        'show what apply -f would change (unified diff, live against the files); exit 1 if anything would',
      )
      .requiredOption('-f, --filename <file|dir>', 'file, directory or - (stdin), as apply'),
  )
    .addHelpText(
      'after',
      '\nExit 0: no differences; 1: differences (printed; a failure also exits 1, with a message on\n' +
        'stderr); 3: invalid files; 4/5 as the other verbs. HEXMESH_EXTERNAL_DIFF names another\n' +
        'diff program, called with the live and the merged file of each changed resource.\n\n' +
        'Example:\n  hexmesh diff -f examples/shop/tour/shift-traffic.yaml',
    )
    .action(async (opts: ControlOpts & { filename: string }) => {
      await runWithClient('diff', opts, async (client) => {
        const { docs } = await loadDocuments(opts.filename);
        let valid;
        try {
          valid = validateResources(docs, opts.filename);
        } catch (err) {
          if (!(err instanceof ConfigError)) throw err;
          throw new CliFailure([err.message, ...err.problems.map(problemLine)].join('\n'), EXIT.CONFIG);
        }
        const dir = await mkdtemp(join(tmpdir(), 'hexmesh-diff-'));
        let changed = false;
        try {
          for (const v of valid) {
            const { kind, metadata } = v.doc;
            const live = await client.getResource(kind, metadata.namespace, metadata.name).then(
              (a) => a.body as unknown as StoredDoc,
              (err: unknown) => {
                if (err instanceof ControlApiError && err.status === 404) return undefined;
                throw err;
              },
            );
            const before = comparable(live);
            const after = comparable(v.doc);
            if (canonicalJson(before) === canonicalJson(after)) continue;
            changed = true;
            const name = `${kind}.${metadata.namespace}.${metadata.name}`;
            const a = join(dir, `live-${name}`);
            const b = join(dir, `merged-${name}`);
            await writeFile(a, yaml(before));
            await writeFile(b, yaml(after));
            process.stdout.write(await unifiedDiff(a, b, `live/${name}`, `merged/${name}`));
          }
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
        if (changed) process.exitCode = 1;
      });
    });
}

/** `diff -u` of two files with labels (its exit 1 means "different", not a failure). */
function unifiedDiff(a: string, b: string, labelA: string, labelB: string): Promise<string> {
  const external = process.env.HEXMESH_EXTERNAL_DIFF;
  const [cmd, args] = external
    ? [external, [a, b]]
    : ['diff', ['-u', '--label', labelA, '--label', labelB, a, b]];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.on('error', (e) =>
      reject(new CliFailure(`cannot run ${cmd}: ${e.message} (set HEXMESH_EXTERNAL_DIFF)`, EXIT.RUNTIME)),
    );
    child.on('close', (code) =>
      code === 0 || code === 1
        ? resolve(out)
        : reject(new CliFailure(`${cmd} exited with ${code}`, EXIT.RUNTIME)),
    );
  });
}
