/**
 * The control plane's state store: one interface with the etcd data model, so the
 * embedded default (SQLite on one file) and etcd (to scale out) are interchangeable and
 * pass one conformance suite (test/store/conformance.ts).
 *
 * Model (as etcd v3): a flat ordered key space; every write bumps a store-wide
 * `revision`; each key remembers `createRevision`, `modRevision` and `version` (writes
 * since creation); watches replay every event after a given revision; leases expire
 * keys attached to them unless kept alive.
 */

export interface KeyValue {
  readonly key: string;
  readonly value: string;
  /** Revision of the write that created the key (kept across updates, reset by delete+put). */
  readonly createRevision: number;
  /** Revision of the last write to the key: use it for optimistic concurrency. */
  readonly modRevision: number;
  /** Number of writes since creation (1 after create). */
  readonly version: number;
  /** Lease the key is attached to, or 0. */
  readonly lease: number;
}

export interface RangeResult {
  readonly kvs: readonly KeyValue[];
  /** Store revision at which the read was taken. */
  readonly revision: number;
}

export interface PutOptions {
  /** Attach the key to a lease: it is deleted when the lease expires or is revoked. */
  lease?: number;
  /**
   * Optimistic concurrency: the write succeeds only if the key's current modRevision equals
   * this; 0 means "the key must not exist" (create only). Otherwise StoreConflictError.
   */
  prevModRevision?: number;
}

export interface DeleteOptions {
  /** Delete only if the key's modRevision equals this (else StoreConflictError). */
  prevModRevision?: number;
}

export interface WriteResult {
  /** Store revision after the write. */
  readonly revision: number;
}

export interface DeleteResult extends WriteResult {
  /** Number of keys deleted (0 when the key was absent). */
  readonly deleted: number;
}

export interface WatchEvent {
  readonly type: 'put' | 'delete';
  /** For a delete: the key with value '' and modRevision = the delete's revision. */
  readonly kv: KeyValue;
  /** The previous value, when known. */
  readonly prevKv?: KeyValue;
}

export interface Watcher {
  /** Stop watching. Idempotent. */
  close(): void;
}

export interface WatchOptions {
  /** Deliver every event with revision >= this (replay), then live events. Default: current + 1. */
  fromRevision?: number;
  /** Called with batches of events in revision order; a batch never splits one revision. */
  onEvents(events: readonly WatchEvent[]): void;
  /** The watch broke (e.g. the revision was compacted, or the backend went away). */
  onError?(err: Error): void;
}

export interface Store {
  /** `embedded` (SQLite) or `etcd`. */
  readonly kind: string;
  get(key: string): Promise<KeyValue | undefined>;
  /** Every key starting with `prefix`, in key order (limit optional). */
  range(prefix: string, opts?: { limit?: number }): Promise<RangeResult>;
  put(key: string, value: string, opts?: PutOptions): Promise<WriteResult>;
  delete(key: string, opts?: DeleteOptions): Promise<DeleteResult>;
  /** Delete every key under a prefix. */
  deletePrefix(prefix: string): Promise<DeleteResult>;
  /** The current store revision. */
  revision(): Promise<number>;
  /** Watch a prefix ('' for everything). */
  watch(prefix: string, opts: WatchOptions): Watcher;
  /** Grant a lease of `ttlMs`; keys attached to it vanish when it expires. Returns its id. */
  grantLease(ttlMs: number): Promise<number>;
  /** Extend a lease by its TTL; throws StoreLeaseNotFoundError when it already expired. */
  keepAlive(lease: number): Promise<void>;
  revokeLease(lease: number): Promise<void>;
  /** Release resources. Idempotent. */
  close(): Promise<void>;
}

export class StoreError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreError';
    this.code = code;
  }
}

/** A compare-and-set precondition failed: someone else wrote the key first. */
export class StoreConflictError extends StoreError {
  readonly key: string;
  readonly expected: number;
  readonly actual: number;
  constructor(key: string, expected: number, actual: number) {
    super(
      'HEXMESH_ERR_STORE_CONFLICT',
      expected === 0
        ? `${key} already exists (modRevision ${actual})`
        : `${key} was modified: expected modRevision ${expected}, found ${actual === 0 ? 'no key' : actual}`,
    );
    this.key = key;
    this.expected = expected;
    this.actual = actual;
  }
}

export class StoreLeaseNotFoundError extends StoreError {
  constructor(lease: number) {
    super('HEXMESH_ERR_LEASE_NOT_FOUND', `lease ${lease} not found (expired or revoked)`);
  }
}

/** A watch asked for history that compaction already removed: re-read with range() and watch from its revision. */
export class StoreCompactedError extends StoreError {
  readonly requested: number;
  /** Revision up to which history was removed, when the backend says (etcd's watch does not). */
  readonly compactRevision: number | undefined;
  constructor(requested: number, compactRevision?: number) {
    super(
      'HEXMESH_ERR_STORE_COMPACTED',
      `revision ${requested} was compacted` +
        (compactRevision === undefined ? '' : ` (history kept from revision ${compactRevision + 1})`) +
        '; re-read with range() and watch from its revision',
    );
    this.requested = requested;
    this.compactRevision = compactRevision;
  }
}

export class StoreUnavailableError extends StoreError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('HEXMESH_ERR_STORE_UNAVAILABLE', message, options);
  }
}

/**
 * Key layout of the control plane (one place, so every component agrees):
 *   /hexmesh/resources/<Kind>/<namespace>/<name>     resource JSON
 *   /hexmesh/instances/<namespace>/<service>/<id>     catalog instance JSON (leased by its sidecar)
 *   /hexmesh/kv/<user key>                            KV entries, raw value
 *   /hexmesh/proxies/<ns>/<service>/<id>              connected proxies (leased; admin address for Prometheus SD)
 *   /hexmesh/leader/<role>                            leader election (leased)
 */
export const KEYS = Object.freeze({
  resources: '/hexmesh/resources/',
  resource: (kind: string, namespace: string, name: string) =>
    `/hexmesh/resources/${kind}/${namespace}/${name}`,
  instances: '/hexmesh/instances/',
  instance: (namespace: string, service: string, id: string) =>
    `/hexmesh/instances/${namespace}/${service}/${id}`,
  kv: '/hexmesh/kv/',
  proxies: '/hexmesh/proxies/',
  leader: (role: string) => `/hexmesh/leader/${role}`,
});
