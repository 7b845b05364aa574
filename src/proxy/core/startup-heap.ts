/**
 * Keeps V8's young generation at its initial size while the sidecar starts.
 *
 * Start-up allocates a burst (the bundle's modules, the config, the first chain), and V8 grows
 * the young generation to fit it: an idle sidecar then kept semi-spaces it never needed again
 * until V8's memory reducer ran, 5–10 s into idleness. With growth held until the proxy serves,
 * start-up pays a few more scavenges and the idle sidecar 0.4 MiB less private memory (issue
 * 11, `bench/sidecar-footprint.ts --base`, docs/benchmark.md). Growth is restored as the proxy
 * starts serving, so under load V8 sizes the young generation as it always does.
 *
 * `--semi-space-growth-factor` is the one young-generation flag V8 reads on every resize rather
 * than once at start-up (`--max-semi-space-size` set at run time has no effect). A factor given
 * on node's command line (NODE_OPTIONS does not take this flag) is the operator's, left alone.
 */
import { setFlagsFromString } from 'node:v8';

/** V8's default `--semi-space-growth-factor` (Node 20, V8 11.3). */
export const V8_GROWTH_FACTOR = 2;
const FLAG = '--semi-space-growth-factor';

/** Whether the operator set the growth factor themselves (node's command line). */
function operatorSet(): boolean {
  return process.execArgv.some((a) => a.startsWith(FLAG) || a.startsWith('--semi_space_growth_factor'));
}

/** Hold the young generation at its current size; the returned function lets it grow again. */
export function holdYoungGeneration(): () => void {
  if (operatorSet()) return () => {};
  setFlagsFromString(`${FLAG}=1`);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    setFlagsFromString(`${FLAG}=${V8_GROWTH_FACTOR}`);
  };
}
