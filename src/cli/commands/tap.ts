/**
 * `hexmesh tap SERVICE`: live requests through the service's proxies, from the control
 * plane's fan-in (`GET /v1/tap`). One row per request under a header (TAP_COLUMNS: the
 * names `top` uses); `-o json` prints the stream's NDJSON as received (requests, drops,
 * proxies going away).
 */
import { Command, Option } from 'commander';
import type { ControlClient } from '../client/control-client.ts';
import { runWithClient, withControl, type ControlOpts } from '../client/command-support.ts';
import { EXIT } from '../exit-codes.ts';
import { grpcStatusText } from '../../telemetry/tap/grpc-status.ts';
import { fmtMs } from './stat.ts';

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

/** `14 UNAVAILABLE` for a gRPC status code, `-` for none (not gRPC). */
export function grpcCell(v: unknown): string {
  if (v === null || v === undefined || v === '') return '-';
  return grpcStatusText(String(v));
}

const str = (v: unknown): string => (v === null || v === undefined || v === '' ? '-' : String(v));

interface TapColumn {
  head: string;
  width: number;
  cell: (l: TapLine) => string;
  /** Only with `-o wide`. */
  wide?: true;
}

/**
 * The columns of `hexmesh tap`'s text output. Names are the ones `hexmesh top` uses (SOURCE,
 * DESTINATION, METHOD, PATH), and each maps to one field of the tap JSON and of the access
 * log — the table in docs/cli.md lists them side by side.
 */
export const TAP_COLUMNS: readonly TapColumn[] = [
  { head: 'TIME', width: 12, cell: (l) => String(l.time).slice(11, 23) },
  { head: 'DIRECTION', width: 9, cell: (l) => str(l.direction) },
  { head: 'SOURCE', width: 12, cell: (l) => str(l.srcService) },
  { head: 'DESTINATION', width: 12, cell: (l) => str(l.dstService) },
  { head: 'METHOD', width: 6, cell: (l) => str(l.method) },
  { head: 'AUTHORITY', width: 16, cell: (l) => str(l.authority), wide: true },
  { head: 'PATH', width: 20, cell: (l) => str(l.path) },
  { head: 'ROUTE', width: 12, cell: (l) => str(l.route), wide: true },
  { head: 'STATUS', width: 6, cell: (l) => str(l.status) },
  { head: 'GRPC', width: 14, cell: (l) => grpcCell(l.grpcStatus) },
  { head: 'LATENCY', width: 8, cell: (l) => fmtMs(typeof l.latencyMs === 'number' ? l.latencyMs : null) },
  { head: 'TLS', width: 3, cell: (l) => (l.tls ? 'yes' : 'no') },
  {
    head: 'IDENTITY',
    width: 24,
    cell: (l) => str(l.direction === 'outbound' ? l.dstIdentity : l.srcIdentity),
    wide: true,
  },
  { head: 'ENDPOINT', width: 15, cell: (l) => str(l.endpoint), wide: true },
  { head: 'ERROR', width: 12, cell: (l) => str(l.error) },
  { head: 'PROXY', width: 0, cell: (l) => str(l.proxy) },
];

/** The columns of `-o text` or `-o wide`: a copy per output, whose widths grow with what it printed. */
export const tapColumns = (wide: boolean): TapColumn[] =>
  TAP_COLUMNS.filter((c) => wide || !c.wide).map((c) => ({ ...c }));

/**
 * One row of cells, never truncated. A value wider than its column pushes the rest of its row
 * right and widens the column for the rows after it (as `docker stats` does), so a stream
 * realigns after one long path instead of staggering every row that has one.
 */
function tapRow(cells: readonly string[], cols: readonly TapColumn[]): string {
  return cells
    .map((c, i) => {
      if (i === cells.length - 1) return c;
      const col = cols[i];
      const padded = c.padEnd(col.width);
      if (c.length > col.width) col.width = c.length;
      return padded;
    })
    .join('  ')
    .trimEnd();
}

export const tapHeader = (cols: readonly TapColumn[]): string =>
  tapRow(
    cols.map((c) => c.head),
    cols,
  );

/**
 * A stream line as text: a request as a row of `cols`; drops, proxies going away, the start
 * and the end as `# …` notes (on stderr).
 */
export function formatTapLine(
  l: TapLine,
  cols: readonly TapColumn[] = tapColumns(false),
): string | undefined {
  if (l.type === 'request')
    return tapRow(
      cols.map((c) => c.cell(l)),
      cols,
    );
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
      new Option('-o, --output <format>', 'output format: text | wide | json')
        .choices(['text', 'wide', 'json'])
        .default('text'),
    )
    .addHelpText(
      'after',
      `
Columns: TIME DIRECTION SOURCE DESTINATION METHOD PATH STATUS GRPC LATENCY TLS ERROR PROXY;
-o wide adds AUTHORITY, ROUTE, IDENTITY (the peer's mTLS identity) and ENDPOINT. The
header is printed once, before the first request. docs/cli.md maps each column to its
field in -o json and in the access log.`,
    )
    .action(async (service: string, f: TapFlags & { output: 'text' | 'wide' | 'json' }) => {
      const cols = tapColumns(f.output === 'wide');
      let headed = false;
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
              const s = formatTapLine(l, cols);
              if (s === undefined) return;
              if (l.type !== 'request') return void process.stderr.write(`${s}\n`);
              if (!headed) process.stdout.write(`${tapHeader(cols)}\n`);
              headed = true;
              process.stdout.write(`${s}\n`);
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
