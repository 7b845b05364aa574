/**
 * `--watch` for the list and view verbs (`stat`, `edges`, `routes`, `ps`, and `top`'s live
 * table): the same frame redrawn every interval until Ctrl-C.
 *
 * On a terminal a frame replaces the last one in place, as `watch(1)` does: the screen is
 * cleared once, then each frame moves the cursor home, rewrites its lines (each ending in
 * erase-to-end-of-line) and erases whatever the previous, longer frame left below — no
 * stacking and no flicker. Into a pipe or file the frames are appended as plain blocks,
 * each headed by its time and separated by a blank line, with no control sequences (so
 * `hexmesh stat --watch | tee log` reads as a log). Frames without a title (`-o json` or
 * `-o yaml`) are the documents alone — a JSON stream for `jq`, YAML documents after `---`.
 */
import { parseDuration } from '../../config/duration.ts';
import { UsageError } from './command-support.ts';

const HOME = '\x1b[H';
const CLEAR_SCREEN = '\x1b[2J';
const CLEAR_LINE = '\x1b[K';
const CLEAR_BELOW = '\x1b[J';

/** Writes frames in place on a TTY, appended plain blocks otherwise. */
export class FrameWriter {
  readonly #out: NodeJS.WriteStream;
  readonly #tty: boolean;
  #frames = 0;

  constructor(out: NodeJS.WriteStream = process.stdout) {
    this.#out = out;
    this.#tty = out.isTTY === true;
  }

  get tty(): boolean {
    return this.#tty;
  }

  /**
   * Show `body` (lines ending in `\n`) under a one-line `title`; without a title the body
   * alone (`separator`, e.g. YAML's `---`, between frames into a pipe).
   */
  write(title: string | undefined, body: string, separator = ''): void {
    const first = this.#frames++ === 0;
    const text = body.endsWith('\n') ? body : `${body}\n`;
    if (!this.#tty) {
      if (title === undefined) this.#out.write(`${first ? '' : separator}${text}`);
      else this.#out.write(`${first ? '' : '\n'}${title}\n${text}`);
      return;
    }
    const lines = (title === undefined ? body : `${title}\n\n${body}`).replace(/\n$/, '').split('\n');
    this.#out.write(
      (first ? CLEAR_SCREEN : '') + HOME + lines.map((l) => l + CLEAR_LINE).join('\n') + '\n' + CLEAR_BELOW,
    );
  }
}

/** The `--watch` and `--interval` options' values, checked. */
export interface WatchFlags {
  watch?: boolean;
  interval?: string;
}

export const WATCH_OPTION = [
  '--watch',
  'redraw every --interval until Ctrl-C (in place on a terminal)',
] as const;
export const INTERVAL_OPTION = ['--interval <duration>', 'with --watch: time between redraws', '2s'] as const;

export function intervalMs(f: WatchFlags): number {
  const ms = parseDuration(f.interval ?? '2s');
  if (ms === undefined || ms < 100)
    throw new UsageError(
      `--interval must be a duration of at least 100ms (got ${JSON.stringify(f.interval)})`,
    );
  return ms;
}

/**
 * Render and write a frame every `everyMs` until SIGINT or SIGTERM (then resolve: a watch
 * ended by the user is a success). A frame that fails (the control plane went away, a
 * refused token) ends the watch with that error, as `kubectl get -w` does.
 */
export async function watchFrames(
  title: string,
  everyMs: number,
  render: () => Promise<string>,
  out = new FrameWriter(),
  /** `json` or `yaml`: frames are the documents alone (no title). */
  data?: 'json' | 'yaml',
): Promise<void> {
  const ac = new AbortController();
  const stop = () => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    while (!ac.signal.aborted) {
      const body = await render();
      if (ac.signal.aborted) break;
      if (data !== undefined) out.write(undefined, body, data === 'yaml' ? '---\n' : '');
      else out.write(`Every ${everyMs / 1000}s: ${title}    ${new Date().toISOString()}`, body);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, everyMs);
        ac.signal.addEventListener(
          'abort',
          () => {
            clearTimeout(timer);
            resolve();
          },
          { once: true },
        );
      });
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}
