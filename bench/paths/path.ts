/**
 * One benchmarked path: where the load generator sends, which processes are the proxies
 * whose CPU and memory are measured, and how to tear it down.
 */
import type { Protocol } from '../lib/senders.ts';
import type { BenchCerts } from '../lib/tls-certs.ts';
import type { GcTrace } from '../lib/gc-trace.ts';
import type { Managed, ProcessGroup } from '../lib/process-group.ts';

export type PathName = 'direct' | 'hexmesh' | 'haproxy' | 'node-floor' | 'node-floor-lean';

/** The paths of a default run. */
export const PATH_NAMES: readonly PathName[] = ['direct', 'hexmesh', 'haproxy'];
/**
 * Paths run only when named in --paths (bench/floor/): `node-floor`, node:http's server and
 * hexmesh's hop (h2c and gRPC: Node's http2 server and client); `node-floor-lean`, HTTP/1.1
 * only, the same with llhttp on the socket as listener.
 */
export const EXTRA_PATH_NAMES: readonly PathName[] = ['node-floor', 'node-floor-lean'];

export interface PathContext {
  group: ProcessGroup;
  upstreamPort: number;
  /** The upstream's HTTP/2 cleartext listener (h2c and gRPC). */
  upstreamH2Port: number;
  /** What the app speaks to its sidecar, end to end. */
  protocol: Protocol;
  /** A scratch directory for config files, removed at the end of the run. */
  tmpDir: string;
  /** Mutual TLS between the two proxies, when the path supports it. */
  certs?: BenchCerts;
  /**
   * hexmesh only: protocol between the two sidecars for HTTP/1 traffic (`proxy.hopTransport`);
   * HTTP/2 and gRPC traffic keeps HTTP/2 either way.
   */
  hop?: 'http1' | 'http2';
  /** Bound on start-up, ms. */
  startTimeoutMs: number;
}

export interface RunningPath {
  name: PathName;
  /** Origin the load generators send to, e.g. http://127.0.0.1:4140 */
  origin: string;
  /** Host header on every request. */
  host: string;
  /** The proxy processes (client side first); empty for `direct`. */
  proxies: readonly Managed[];
  /** GC pause counters of each proxy (same order as `proxies`), for proxies that have a GC. */
  gc?: readonly GcTrace[];
  /** Transport between the two proxies, for the report: 'plaintext', 'mTLS' or '-'. */
  hop: string;
  close(): Promise<void>;
}

export type PathStarter = (ctx: PathContext) => Promise<RunningPath>;
