/**
 * `hexmesh template` as a class: render each template from catalog + KV, write the output
 * atomically only when it changed, run its reload command; then follow exactly the data
 * each template used (one blocking-query watcher per dependency, shared by templates) and
 * re-render after a quiet period (min, max), as consul-template. A failed render keeps the
 * last good file.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { Liquid, Template } from 'liquidjs';
import type { ControlClient } from '../cli/client/control-client.ts';
import { writeFileAtomic } from './atomic-write.ts';
import { DependencyWatcher, dependencyId, type Dependency } from './dependency.ts';
import { QuietPeriod } from './quiet-period.ts';
import type * as EngineModule from './template-engine.ts';
import type { RenderLimits } from './template-engine.ts';

/**
 * The Liquid engine module, loaded by the first create(): every CLI command shares one bundle,
 * and liquidjs should not be in processes that never render (the sidecar's above all).
 */
let engineModule: typeof EngineModule | undefined;

export interface TemplateSpec {
  source: string;
  destination: string;
  /** Shell command run after the destination changed. */
  command?: string;
}

export interface TemplateRunnerOptions {
  client: ControlClient;
  templates: readonly TemplateSpec[];
  /** Quiet period: render once nothing changed for `waitMinMs` ... */
  waitMinMs: number;
  /** ... but at most this long after the first change (default 4 × min). */
  waitMaxMs?: number;
  /** Wait of each blocking query (default 60 s). */
  queryWaitMs?: number;
  /** Progress lines (rendered, unchanged, command output status). */
  log?: (line: string) => void;
  /** Render and command failures (the runner goes on). */
  warn?: (line: string) => void;
  /** Time and memory a render may take (defaults: template-engine.ts RENDER_LIMIT_MS, MEMORY_LIMIT). */
  limits?: RenderLimits;
  /** Runs a reload command (default: `sh -c`, output inherited, 60 s limit). */
  runCommand?: (command: string) => Promise<{ code: number | null; signal: string | null }>;
}

interface Entry {
  spec: TemplateSpec;
  engine: Liquid;
  tpl: Template[];
  /** Dependency ids the last render used. */
  deps: Set<string>;
  /** What the destination holds (read at start; undefined when absent). */
  current: string | undefined;
  dirty: boolean;
}

/** Parse `in.tmpl:out.conf[:reload command]` (the command may itself contain colons). */
export function parseTemplateSpec(v: string): TemplateSpec {
  const i = v.indexOf(':');
  const j = i < 0 ? -1 : v.indexOf(':', i + 1);
  const source = i < 0 ? '' : v.slice(0, i);
  const destination = i < 0 ? '' : v.slice(i + 1, j < 0 ? undefined : j);
  const command = j < 0 ? undefined : v.slice(j + 1).trim() || undefined;
  if (!source || !destination)
    throw new Error(`-t must be <template>:<output>[:<reload command>] (got ${JSON.stringify(v)})`);
  return { source, destination, command };
}

export function runShell(
  command: string,
  timeoutMs = 60_000,
): Promise<{ code: number | null; signal: string | null }> {
  return new Promise((done) => {
    const child = spawn('/bin/sh', ['-c', command], { stdio: ['ignore', 'inherit', 'inherit'] });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', () => done({ code: 127, signal: null }));
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      done({ code, signal });
    });
  });
}

export class TemplateRunner {
  readonly #opts: TemplateRunnerOptions;
  readonly #entries: Entry[];
  readonly #watchers = new Map<string, DependencyWatcher>();
  /** Dependencies whose reads fail (reported once until they read again). */
  readonly #failing = new Set<string>();
  readonly #quiet: QuietPeriod;
  #rendering: Promise<boolean> | undefined;
  #again = false;
  #closed = false;
  /** Completed render passes (tests wait on it). */
  passes = 0;

  private constructor(opts: TemplateRunnerOptions, entries: Entry[]) {
    this.#opts = opts;
    this.#entries = entries;
    this.#quiet = new QuietPeriod(opts.waitMinMs, opts.waitMaxMs, () => void this.#renderPass());
  }

  /** Read and parse every template (throws TemplateSyntaxError naming file and line). */
  static async create(opts: TemplateRunnerOptions): Promise<TemplateRunner> {
    engineModule ??= await import('./template-engine.ts');
    const { createEngine, parseTemplate } = engineModule;
    const entries: Entry[] = [];
    for (const spec of opts.templates) {
      const source = resolve(spec.source);
      let text: string;
      try {
        text = await readFile(source, 'utf8');
      } catch (err) {
        throw new Error(
          `cannot read template ${spec.source}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
          { cause: err },
        );
      }
      const engine = createEngine(dirname(source), opts.limits);
      const tpl = parseTemplate(engine, text, spec.source);
      const current = await readFile(spec.destination, 'utf8').catch(() => undefined);
      entries.push({ spec, engine, tpl, deps: new Set(), current, dirty: true });
    }
    return new TemplateRunner(opts, entries);
  }

  /** Render every template once now; true if all rendered. */
  async renderAll(): Promise<boolean> {
    for (const e of this.#entries) e.dirty = true;
    return this.#renderPass();
  }

  /** Render now, then follow changes until close(). */
  async start(): Promise<boolean> {
    return this.renderAll();
  }

  async #renderPass(): Promise<boolean> {
    if (this.#rendering) {
      this.#again = true;
      return this.#rendering;
    }
    const run = (async () => {
      let ok = true;
      const commands = new Set<string>();
      for (const e of this.#entries) {
        if (!e.dirty || this.#closed) continue;
        e.dirty = false;
        if (!(await this.#renderOne(e, commands))) ok = false;
      }
      for (const cmd of commands) {
        if (this.#closed) break;
        const r = await (this.#opts.runCommand ?? runShell)(cmd);
        if (r.code === 0) this.#opts.log?.(`reload command succeeded: ${cmd}`);
        else this.#opts.warn?.(`reload command failed (${r.signal ?? `exit ${r.code}`}): ${cmd}`);
      }
      this.#prune();
      this.passes++;
      return ok;
    })();
    this.#rendering = run;
    try {
      return await run;
    } finally {
      this.#rendering = undefined;
      if (this.#again && !this.#closed) {
        this.#again = false;
        void this.#renderPass();
      }
    }
  }

  async #renderOne(e: Entry, commands: Set<string>): Promise<boolean> {
    const used = new Set<string>();
    const source = { get: (d: Dependency) => this.#read(d, used) };
    let output: string;
    try {
      // engineModule is set: a runner exists only once create() loaded it.
      output = await engineModule!.renderTemplate(e.engine, e.tpl, source, e.spec.source);
    } catch (err) {
      // Keep watching what the failed render read too, so the data that fixes it re-renders.
      for (const id of used) e.deps.add(id);
      this.#opts.warn?.(`${(err as Error).message}; keeping the last good ${e.spec.destination}`);
      return false;
    }
    e.deps = used;
    if (output === e.current) {
      this.#opts.log?.(`${e.spec.destination} unchanged`);
      return true;
    }
    try {
      await writeFileAtomic(e.spec.destination, output);
    } catch (err) {
      this.#opts.warn?.(`cannot write ${e.spec.destination}: ${(err as Error).message}`);
      return false;
    }
    e.current = output;
    this.#opts.log?.(`rendered ${e.spec.source} → ${e.spec.destination}`);
    if (e.spec.command) commands.add(e.spec.command);
    return true;
  }

  async #read(d: Dependency, used: Set<string>): Promise<unknown> {
    const id = dependencyId(d);
    used.add(id);
    let w = this.#watchers.get(id);
    if (!w) {
      w = new DependencyWatcher(this.#opts.client, d, {
        waitMs: this.#opts.queryWaitMs,
        onChange: () => {
          this.#failing.delete(id);
          this.#changed(id);
        },
        // Said once per outage (the watcher retries with backoff): the files stay as they are.
        onError: (err) => {
          if (this.#failing.has(id) || this.#closed) return;
          this.#failing.add(id);
          this.#opts.warn?.(`cannot read ${id}: ${(err as Error).message}; retrying, files left as they are`);
        },
      });
      this.#watchers.set(id, w);
    }
    await w.ready;
    return w.value;
  }

  #changed(id: string): void {
    let any = false;
    for (const e of this.#entries)
      if (e.deps.has(id)) {
        e.dirty = true;
        any = true;
      }
    if (any) this.#quiet.poke();
  }

  /** Stop watchers no template used in its last render. */
  #prune(): void {
    const live = new Set<string>();
    for (const e of this.#entries) for (const id of e.deps) live.add(id);
    for (const [id, w] of this.#watchers)
      if (!live.has(id)) {
        this.#watchers.delete(id);
        void w.close();
      }
  }

  /** The dependency ids being watched (for tests and `--help` debugging). */
  get watching(): string[] {
    return [...this.#watchers.keys()].sort();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#quiet.close();
    await this.#rendering?.catch(() => undefined);
    await Promise.all([...this.#watchers.values()].map((w) => w.close()));
    this.#watchers.clear();
  }
}
