/**
 * The template language: Liquid (liquidjs: no eval, no access to JavaScript objects beyond
 * the data given, logic-light) with data filters registered on top — `service`, `services`,
 * `key`, `keyOrDefault`, `ls`, `tree` (docs/templates.md). A filter reads through the
 * render's `DataSource`, which records what the template used so the runner watches exactly
 * that data.
 */
import { Liquid, type Template } from 'liquidjs';
import type { Dependency } from './dependency.ts';

/** What a render reads data from; `get` resolves with the dependency's current value. */
export interface DataSource {
  get(d: Dependency): Promise<unknown>;
}

/** A template that does not parse (exit 3 in the CLI), with file, line and column. */
export class TemplateSyntaxError extends Error {}

/** A render that failed (missing key, unreachable control plane): the last good file stays. */
export class TemplateRenderError extends Error {}

// The render's scope object → its data source. A WeakMap rather than a scope variable, so
// templates cannot see or replace it.
const sources = new WeakMap<object, DataSource>();

function sourceOf(ctx: { environments: unknown }): DataSource {
  const s = sources.get(ctx.environments as object);
  if (!s) throw new Error('data filters work only in templates rendered by hexmesh template');
  return s;
}

function name(filter: string, v: unknown): string {
  if (typeof v !== 'string' || v === '')
    throw new Error(
      `${filter}: expected a non-empty string before | ${filter} (got ${JSON.stringify(v) ?? String(v)})`,
    );
  return v;
}

const DNS = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/**
 * A render that runs longer than this fails (the last good file stays): a template that
 * renders itself, or loops over a range read from KV, would otherwise hold every template's
 * render pass — and the process's exit — for ever.
 */
export const RENDER_LIMIT_MS = 10_000;
/**
 * Elements and characters one render may make: ranges, filter results and every `{{ }}`
 * output (a 1 MiB KV value in a loop would otherwise grow the output without bound).
 */
export const MEMORY_LIMIT = 32 * 1024 * 1024;

export interface RenderLimits {
  /** Default RENDER_LIMIT_MS. */
  renderLimitMs?: number;
  /** Default MEMORY_LIMIT. */
  memoryLimit?: number;
}

/** A Liquid engine with the data filters. `root` is where `{% render %}`/`{% include %}` look. */
export function createEngine(root: string, limits: RenderLimits = {}): Liquid {
  const engine = new Liquid({
    root: [root],
    partials: [root],
    extname: '',
    strictFilters: true,
    strictVariables: false,
    ownPropertyOnly: true,
    cache: false,
    renderLimit: limits.renderLimitMs ?? RENDER_LIMIT_MS,
    memoryLimit: limits.memoryLimit ?? MEMORY_LIMIT,
    // Not an escape: every output is charged to the render's memory limit.
    // (liquidjs stringifies what it returns; returning the value unchanged keeps its output.)
    outputEscape(this: { context: { memoryLimit: { use(n: number): void } } }, v: unknown) {
      this.context.memoryLimit.use(typeof v === 'string' ? v.length : 1);
      return v as string;
    },
  });
  engine.registerFilter(
    'service',
    async function (
      this: { context: { environments: unknown } },
      input: unknown,
      namespace: unknown = 'default',
    ) {
      const n = name('service', input);
      const ns = name('service namespace', namespace);
      if (!DNS.test(n) || !DNS.test(ns))
        throw new Error(
          `service: invalid service name ${JSON.stringify(n)} or namespace ${JSON.stringify(ns)}`,
        );
      return sourceOf(this.context).get({ type: 'service', name: n, namespace: ns });
    },
  );
  engine.registerFilter(
    'services',
    async function (this: { context: { environments: unknown } }, input: unknown) {
      const ns =
        input === undefined || input === null || input === '' || input === '*'
          ? undefined
          : name('services', input);
      return sourceOf(this.context).get({ type: 'services', namespace: ns });
    },
  );
  engine.registerFilter('key', async function (this: { context: { environments: unknown } }, input: unknown) {
    const key = name('key', input);
    const v = await sourceOf(this.context).get({ type: 'key', key });
    if (v === undefined) throw new Error(`key "${key}" not found (use keyOrDefault for an optional key)`);
    return v;
  });
  engine.registerFilter(
    'keyOrDefault',
    async function (this: { context: { environments: unknown } }, input: unknown, def: unknown = '') {
      const v = await sourceOf(this.context).get({ type: 'key', key: name('keyOrDefault', input) });
      return v === undefined ? def : v;
    },
  );
  engine.registerFilter('ls', async function (this: { context: { environments: unknown } }, input: unknown) {
    return sourceOf(this.context).get({ type: 'ls', prefix: name('ls', input), recurse: false });
  });
  engine.registerFilter(
    'tree',
    async function (this: { context: { environments: unknown } }, input: unknown) {
      return sourceOf(this.context).get({ type: 'ls', prefix: name('tree', input), recurse: true });
    },
  );
  return engine;
}

/** Parse once at start: syntax errors and unknown filters are reported before anything runs. */
export function parseTemplate(engine: Liquid, text: string, file: string): Template[] {
  try {
    return engine.parse(text, file);
  } catch (err) {
    throw new TemplateSyntaxError(`${file}: ${(err as Error).message}`);
  }
}

/** Render with data from `source`; errors name the file and line. */
export async function renderTemplate(
  engine: Liquid,
  tpl: Template[],
  source: DataSource,
  file: string,
): Promise<string> {
  const scope: Record<string, unknown> = {};
  sources.set(scope, source);
  try {
    return String(await engine.render(tpl, scope));
  } catch (err) {
    const msg = (err as Error).message;
    throw new TemplateRenderError(msg.includes('file:') ? msg : `${file}: ${msg}`);
  }
}
