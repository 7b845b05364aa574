/**
 * `hexmesh tap SERVICE`: live requests through the service's proxies, from the control
 * plane's fan-in (`GET /v1/tap`). One line per request; `-o json` prints the stream's NDJSON
 * as received (requests, drops, proxies going away).
 */
import { Command, Option } from 'commander';
import type { ControlClient } from '../client/control-client.ts';
import { runWithClient, withControl, type ControlOpts } from '../client/command-support.ts';
import { EXIT } from '../exit-codes.ts';

export interface TapFlags extends ControlOpts {
  namespace?: string;
  instance?: string;
  path?: string;
  method?: string;
  status?: string;
  peer?: string;
  direction?: string;
  rate?: string;
  limit?: string;
}

export type TapLine = Record<string, unknown> & { type: string };

/** The `/v1/tap` query of the flags. */
export function tapQuery(service: string, f: TapFlags): URLSearchParams {
  const q = new URLSearchParams({ service });
  for (const k of [
    'namespace',
    'instance',
    'path',
    'method',
    'status',
    'peer',
    'direction',
    'rate',
    'limit',
  ] as const) {
    const v = f[k];
    if (v !== undefined && v !== '') q.set(k, v);
  }
  return q;
}

/**
 * Open the control plane's tap stream and call `onLine` per NDJSON line until it ends, the
 * signal aborts, or it fails (ControlApiError with the API's message). The stream goes
 * through the CLI's one authenticated client: tap needs the `tap` permission.
 */
export async function streamTap(
  client: ControlClient,
  query: URLSearchParams,
  onLine: (line: TapLine) => void,
  signal: AbortSignal,
): Promise<void> {
  let body: AsyncIterable<Buffer>;
  try {
    body = await client.stream('/v1/tap', query, signal);
  } catch (err) {
    if (signal.aborted) return;
    throw err;
  }
  let buf = '';
  try {
    for await (const chunk of body) {
      buf += (chunk as Buffer).toString('utf8');
      let nl;
      while ((nl = buf.indexOf('\n')) !== -1) {
        const raw = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (raw) onLine(JSON.parse(raw) as TapLine);
      }
    }
  } catch (err) {
    if (!signal.aborted) throw err;
  }
}

/** `12:01:02.345 → ratings GET /api 200 3.1ms client→ratings tls [ratings-1]` */
export function formatTapLine(l: TapLine): string | undefined {
  if (l.type === 'request') {
    const time = String(l.time).slice(11, 23);
    const dir = l.direction === 'inbound' ? 'in ' : 'out';
    const grpc = l.grpcStatus ? ` grpc=${String(l.grpcStatus)}` : '';
    const err = l.error ? ` error=${String(l.error)}` : '';
    const id = l.srcIdentity ?? l.dstIdentity;
    return `${time} ${dir} ${String(l.srcService)} → ${String(l.dstService)} ${String(l.method)} ${String(l.authority)}${String(l.path)} ${String(l.status)}${grpc} ${String(l.latencyMs)}ms ${l.tls ? 'tls' : 'plaintext'}${id ? ` id=${String(id)}` : ''}${err} [${String(l.proxy)}]`;
  }
  if (l.type === 'dropped')
    return `# dropped ${String(l.count)} events${l.proxy ? ` at ${String(l.proxy)}` : ''} (rate limit or slow reader)`;
  if (l.type === 'proxy-gone') return `# proxy ${String(l.proxy)} gone: ${String(l.reason)}`;
  if (l.type === 'start') return `# tapping ${(l.proxies as { id: string }[]).map((p) => p.id).join(', ')}`;
  if (l.type === 'end') return `# end: ${String(l.reason)}`;
  return undefined;
}

/** Shared flags of tap and top. */
export function tapOptions(cmd: Command): Command {
  return withControl(
    cmd
      .option('-n, --namespace <ns>', 'namespace of the service')
      .option('--instance <id>', 'only this instance')
      .option('--path <prefix>', 'only paths starting with this')
      .option('--method <method>', 'only this method')
      .option('--status <status>', 'only this status or class (503, 5xx)')
      .option('--peer <service>', 'only requests from or to this service')
      .option('--direction <dir>', 'inbound or outbound only'),
  );
}

export function tapCommand(): Command {
  return tapOptions(
    new Command('tap')
      .description("live requests through a service's proxies (no bodies or header values)")
      .argument('<service>'),
  )
    .option('--rate <n>', 'events per second per proxy (default 100)')
    .option('--limit <n>', 'stop after this many events')
    .addOption(
      new Option('-o, --output <format>', 'output format: text | json')
        .choices(['text', 'json'])
        .default('text'),
    )
    .action(async (service: string, f: TapFlags & { output: 'text' | 'json' }) => {
      const ac = new AbortController();
      const stop = () => ac.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      try {
        await runWithClient('tap', f, async (client) => {
          await streamTap(
            client,
            tapQuery(service, f),
            (l) => {
              if (f.output === 'json') return void process.stdout.write(`${JSON.stringify(l)}\n`);
              const s = formatTapLine(l);
              if (s === undefined) return;
              (l.type === 'request' ? process.stdout : process.stderr).write(`${s}\n`);
            },
            ac.signal,
          );
          process.exitCode = EXIT.OK;
        });
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    });
}
