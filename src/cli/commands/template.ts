/** `hexmesh template`: render files from the catalog and KV, re-render on change (docs/templates.md). */
import { Command, InvalidArgumentError } from 'commander';
import { parseDuration } from '../../config/duration.ts';
import { TemplateRunner, parseTemplateSpec, type TemplateSpec } from '../../template/template-runner.ts';
import {
  CliFailure,
  UsageError,
  runWithClient,
  withControl,
  type ControlOpts,
} from '../client/command-support.ts';
import { EXIT } from '../exit-codes.ts';

/** `2s` (max = 4 × min) or `2s:8s`. */
export function parseWait(v: string): { minMs: number; maxMs: number } {
  const [a, b, extra] = v.split(':');
  const min = parseDuration(a);
  const max = b === undefined ? (min === undefined ? undefined : 4 * min) : parseDuration(b);
  if (extra !== undefined || min === undefined || max === undefined || max < min)
    throw new UsageError(
      `--wait must be <min> or <min>:<max> with max ≥ min, e.g. 2s or 2s:8s (got ${JSON.stringify(v)})`,
    );
  return { minMs: min, maxMs: max };
}

const collectSpec = (v: string, prev: TemplateSpec[] = []): TemplateSpec[] => {
  try {
    return [...prev, parseTemplateSpec(v)];
  } catch (err) {
    // commander reports it as a usage error (exit 2).
    throw new InvalidArgumentError((err as Error).message);
  }
};

export function templateCommand(): Command {
  return withControl(
    new Command('template')
      .description(
        'render files from the catalog and KV (Liquid templates); re-render on change and run a reload command',
      )
      .requiredOption(
        '-t, --template <in:out[:command]>',
        'template file, output file, optional reload command (shell); repeatable',
        collectSpec,
      )
      .option('--once', 'render once and exit (0 if every template rendered)')
      .option(
        '--wait <min[:max]>',
        'quiet period before re-rendering: min without changes, max after the first (default max 4 × min)',
        '500ms',
      ),
  )
    .addHelpText(
      'after',
      `
Data filters: "web" | service [: "ns"] (passing instances), "" | services, "k" | key,
"k" | keyOrDefault: "v", "prefix/" | ls, "prefix/" | tree. See docs/templates.md.

Example (haproxy.cfg.tmpl):
  {% assign web = "web" | service %}
  backend web
  {%- for i in web %}
    server {{ i.id }} {{ i.address }}:{{ i.port }} check
  {%- endfor %}

  hexmesh template -t haproxy.cfg.tmpl:/etc/haproxy/haproxy.cfg:"systemctl reload haproxy" --wait 2s:8s`,
    )
    .action(async (opts: ControlOpts & { template: TemplateSpec[]; once?: boolean; wait: string }) => {
      await runWithClient('template', opts, async (client) => {
        const wait = parseWait(opts.wait);
        let runner: TemplateRunner;
        try {
          runner = await TemplateRunner.create({
            client,
            templates: opts.template,
            waitMinMs: wait.minMs,
            waitMaxMs: wait.maxMs,
            log: (l) => process.stdout.write(`hexmesh template: ${l}\n`),
            warn: (l) => process.stderr.write(`hexmesh template: ${l}\n`),
          });
        } catch (err) {
          // Loaded by create() already; imported here so liquidjs stays out of other commands.
          const { TemplateSyntaxError } = await import('../../template/template-engine.ts');
          if (err instanceof TemplateSyntaxError) throw new CliFailure(err.message, EXIT.CONFIG);
          throw new CliFailure((err as Error).message, EXIT.USAGE);
        }
        if (opts.once) {
          const ok = await runner.renderAll();
          await runner.close();
          if (!ok) process.exitCode = EXIT.RUNTIME;
          return;
        }
        await runner.start();
        await new Promise<void>((resolve) => {
          const stop = () => {
            process.off('SIGINT', stop);
            process.off('SIGTERM', stop);
            resolve();
          };
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
        });
        await runner.close();
      });
    });
}
