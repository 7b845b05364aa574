/** IPC messages between bench/control/run.ts and its subscriber worker processes. */

export interface ConnectCommand {
  type: 'connect';
  /** `ws://host:port/v1/discovery` */
  url: string;
  /** Subscribers this worker opens; their node ids are `bench-proxy-<firstId + i>`. */
  count: number;
  firstId: number;
  /** Handshakes (connect → snapshot) in flight at once in this worker. */
  concurrency: number;
  /** Number of seeded services (`svc-0000` …). */
  services: number;
  /** Destinations besides the hot service each proxy subscribes to. */
  perProxy: number;
  /** The service every subscriber subscribes to (where changes happen). */
  hot: string;
  /** Change `i` is an endpoint with port `portBase + i` in the hot service. */
  portBase: number;
  changes: number;
  connectTimeoutMs: number;
}

export type ParentMessage =
  ConnectCommand | { type: 'progress'; change: number } | { type: 'report' } | { type: 'close' };

export type WorkerMessage =
  | { type: 'ready' }
  /** Per subscriber: ms from connect to its first snapshot (NaN: failed). */
  | { type: 'connected'; fullConfigMs: number[]; errors: string[] }
  | { type: 'progress'; seen: number; dropped: number }
  /** receipts[change][subscriber]: absolute ms (performance.timeOrigin + now()), NaN if never seen. */
  | { type: 'report'; receipts: number[][]; dropped: number; errors: string[] }
  | { type: 'closed' };
