/**
 * Keeps a sidecar's memory flat on its first large transfer.
 *
 * undici parses HTTP/1.1 with llhttp compiled to WebAssembly. V8 runs it first with its baseline
 * compiler (Liftoff), then, once its functions are hot — during the sidecar's first large
 * transfer — recompiles them with TurboFan on a worker thread. llhttp's state machine is one
 * huge function, and that one compilation takes 25–35 MiB of compiler memory: the first 100
 * MiB through fresh sidecars grew each one's RSS by +42–52 MiB (later transfers ≤ 11).
 * Measured with bench/first-transfer-rss.ts: with llhttp kept on Liftoff the first transfer's
 * peak is +9 MiB, like every later one, and small-request throughput is unchanged within the
 * machine's noise (`--small 4000`: 212–340 req/s with, 162–215 without, on a loaded machine):
 * the parser is a small part of a proxy's work per request.
 *
 * Must run before the first upstream HTTP/1.1 connection (undici compiles llhttp on first use);
 * it only affects WebAssembly, which nothing else in the proxy uses.
 */
import { setFlagsFromString } from 'node:v8';

export function keepWasmOnBaselineCompiler(): void {
  setFlagsFromString('--liftoff-only');
}
