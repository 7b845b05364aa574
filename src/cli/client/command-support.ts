/**
 * What every control-plane verb shares: the `--control URL` option, one client per run,
 * errors turned into one clear message and an exit code (src/cli/exit-codes.ts), and the
 * output formats (`-o table|json|yaml`).
 */
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { stringify } from 'yaml';
import { EXIT } from '../exit-codes.ts';
import { ConfigError } from '../../config/load.ts';
import { ControlApiError, ControlClient, controlUrl } from './control-client.ts';
import { resolveCredentials } from './credentials.ts';

/** A mistake in the arguments found after commander parsed them: exit 2. */
export class UsageError extends Error {}

/** A failure whose message is already complete, with its exit code. */
export class CliFailure extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number) {
    super(message);
    this.exitCode = exitCode;
  }
}

export type OutputFormat = 'table' | 'json' | 'yaml';
/** A list's formats: `wide` is the table with more columns (as kubectl's `-o wide`). */
export type ListFormat = OutputFormat | 'wide';

export interface ControlOpts {
  control?: string;
  credentials?: string;
  controlCa?: string;
}

/**
 * `--control <url>` (env HEXMESH_CONTROL, default: the credentials file's current context,
 * then http://127.0.0.1:7070) and `--credentials <file>` (docs/api-security.md).
 */
export function withControl(cmd: Command): Command {
  return cmd
    .option('--control <url>', 'control plane URL (env HEXMESH_CONTROL, default http://127.0.0.1:7070)')
    .option(
      '--credentials <file>',
      'credentials file (env HEXMESH_CREDENTIALS, default ~/.hexmesh/credentials, then ./.hexmesh/credentials.json); env HEXMESH_TOKEN overrides its token',
    )
    .option(
      '--control-ca <file>',
      'with an https:// control URL: PEM of the CA to trust (env HEXMESH_CONTROL_CA; `hexmesh control --tls` writes <data-dir>/ca-bundle.pem)',
    );
}

/** `-o, --output <format>` with the formats allowed. */
export function outputOption(formats: readonly ListFormat[], def: OutputFormat): Option {
  return new Option('-o, --output <format>', `output format: ${formats.join(' | ')}`)
    .choices(formats)
    .default(def);
}

/** The exit code and message for an error of a control-plane verb. */
export function describeFailure(err: unknown): { code: number; message: string } {
  if (err instanceof CliFailure) return { code: err.exitCode, message: err.message };
  if (err instanceof UsageError)
    return { code: EXIT.USAGE, message: `${err.message}\n(run with --help for usage)` };
  if (err instanceof ConfigError) return { code: EXIT.CONFIG, message: err.message };
  if (err instanceof ControlApiError) {
    if (err.status === 0) return { code: EXIT.RUNTIME, message: err.message };
    if (err.status === 404) return { code: EXIT.NOT_FOUND, message: err.message };
    if (err.status === 401 || err.status === 403) return { code: EXIT.RUNTIME, message: err.message };
    if (err.status === 409) return { code: EXIT.CONFLICT, message: `conflict: ${err.message}` };
    if (err.code === 'HEXMESH_ERR_CONFIG_INVALID')
      return { code: EXIT.CONFIG, message: [err.message, ...err.problems.map(problemLine)].join('\n') };
    if (err.status === 400) return { code: EXIT.USAGE, message: err.message };
    return { code: EXIT.RUNTIME, message: `${err.message} [${err.code}]` };
  }
  const e = err as Error;
  return { code: EXIT.RUNTIME, message: e?.message ?? String(err) };
}

export function problemLine(p: { path: string; value?: unknown; message: string }): string {
  const got = p.value === undefined ? '' : ` (got ${JSON.stringify(p.value)?.slice(0, 60)})`;
  return `  - ${p.path || '(root)'}: ${p.message}${got}`;
}

/**
 * Run a verb with a client; print a failure as `hexmesh <verb>: message` on stderr and set
 * the exit code instead of throwing (so main's generic handler never sees API errors).
 */
export async function runWithClient(
  verb: string,
  opts: ControlOpts,
  fn: (client: ControlClient) => Promise<void>,
): Promise<void> {
  let client: ControlClient | undefined;
  try {
    client = openControlClient(opts);
    await fn(client);
  } catch (err) {
    const { code, message } = describeFailure(err);
    process.stderr.write(`hexmesh ${verb}: ${message}\n`);
    process.exitCode = code;
  } finally {
    await client?.destroy();
  }
}

/** Run a verb that needs no client, printing a failure as runWithClient does. */
export async function runLocal(verb: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    const { code, message } = describeFailure(err);
    process.stderr.write(`hexmesh ${verb}: ${message}\n`);
    process.exitCode = code;
  }
}

/** The CLI's one client: URL, token and trust anchor from the flags, env and credentials file. */
export function openControlClient(opts: ControlOpts): ControlClient {
  const creds = resolveCredentials(opts);
  const ca = controlCa(opts);
  return new ControlClient(controlUrl(creds.control), { token: creds.token, ...(ca ? { ca } : {}) });
}

/** The PEM of `--control-ca` (else env HEXMESH_CONTROL_CA), or undefined when neither is set. */
export function controlCa(opts: ControlOpts, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const file = opts.controlCa || env.HEXMESH_CONTROL_CA;
  if (!file) return undefined;
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new CliFailure(
      `cannot read --control-ca ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
      EXIT.USAGE,
    );
  }
}

/** What a list verb shows: the GET it makes, and its table (header, and the rows of the list). */
export interface ListVerb<T> {
  name: string;
  description: string;
  /** The verb in failure messages, e.g. `auth token list`. */
  verb: string;
  path: string;
  header: readonly string[];
  rows: (list: T[]) => (readonly string[])[];
  /** `-o wide`: columns added after the table's, and each row's cells for them. */
  wide: { header: readonly string[]; cells: (item: T) => readonly string[] };
}

/**
 * A control-plane verb that GETs a list and prints it as a table (`-o wide`: with the
 * spec's extra columns), or as JSON or YAML.
 */
export function listCommand<T>(spec: ListVerb<T>): Command {
  return withControl(
    new Command(spec.name)
      .description(spec.description)
      .addOption(outputOption(['table', 'wide', 'json', 'yaml'], 'table')),
  ).action(async (opts: ControlOpts & { output: ListFormat }) => {
    await runWithClient(spec.verb, opts, async (client) => {
      const list = (await client.request<T[]>('GET', spec.path)).body;
      if (opts.output === 'json' || opts.output === 'yaml')
        return void process.stdout.write(formatData(list, opts.output));
      const rows = spec.rows(list);
      if (opts.output === 'table') return void process.stdout.write(formatTable(spec.header, rows));
      process.stdout.write(
        formatTable(
          [...spec.header, ...spec.wide.header],
          rows.map((r, i) => [...r, ...spec.wide.cells(list[i])]),
        ),
      );
    });
  });
}

/** Print rows as an aligned table (no borders, two spaces between columns, as kubectl). */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : (c ?? '').padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** JSON (2-space, newline) or YAML of a value. */
export function formatData(value: unknown, format: 'json' | 'yaml'): string {
  return format === 'json' ? JSON.stringify(value, null, 2) + '\n' : stringify(value);
}

/** `5s`, `3m`, `2h`, `4d` since an ISO time (`<unknown>` when absent). */
export function age(iso: string | undefined, now = Date.now()): string {
  if (!iso) return '<unknown>';
  const s = Math.max(0, Math.floor((now - Date.parse(iso)) / 1000));
  if (!Number.isFinite(s)) return '<unknown>';
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/** `--label k=v` (repeatable) into a record. */
export function parseLabels(list: readonly string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of list ?? []) {
    const eq = l.indexOf('=');
    if (eq <= 0) throw new UsageError(`--label must be key=value (got ${JSON.stringify(l)})`);
    out[l.slice(0, eq)] = l.slice(eq + 1);
  }
  return out;
}

export const collect = (v: string, prev: string[] = []): string[] => [...prev, v];
