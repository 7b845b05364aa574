/**
 * The common start of the side-by-side benches (ab.ts, sidecar-footprint.ts): the bench's
 * upstream app in its own process and the context a path starter needs, for HTTP/1.1.
 */
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { PathContext } from '../paths/path.ts';
import type { ProcessGroup } from './process-group.ts';
import { makeCerts } from './tls-certs.ts';

const BENCH = join(import.meta.dirname, '..');

/** Start `bench/upstream.ts` in `group` and return the HTTP/1.1 path context over it. */
export async function upstreamContext(
  group: ProcessGroup,
  tmpDir: string,
  tls: boolean,
): Promise<PathContext> {
  const up = group.start('upstream', process.execPath, ['--import', 'tsx', join(BENCH, 'upstream.ts')], {
    keepStdout: true,
  });
  const rl = createInterface({ input: up.child.stdout! });
  const ports = await new Promise<{ port: number; h2Port: number }>((res) =>
    rl.once('line', (l) => res(JSON.parse(l) as { port: number; h2Port: number })),
  );
  rl.close();
  return {
    group,
    upstreamPort: ports.port,
    upstreamH2Port: ports.h2Port,
    protocol: 'http1',
    tmpDir,
    certs: tls ? makeCerts(tmpDir) : undefined,
    startTimeoutMs: 60_000,
  };
}
