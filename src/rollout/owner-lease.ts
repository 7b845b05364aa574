/**
 * The rollout controller's single-owner guarantee: a lease in the control plane's KV
 * (`rollouts/_controller/owner` = `{id, expiresAt}`), taken and renewed by compare-and-set
 * on the key's modRevision. Whoever holds an unexpired lease acts; another controller may
 * take the key over only after it expired. Like the control plane's own leader lease
 * (src/control/leader.ts) but reachable through the API, since the controller runs in the
 * process that owns the runtime (`hexmesh up`), not in the control plane.
 *
 * Safety rests on the holder giving up before its lease can be taken: it renews every
 * ttl/3 and considers itself the owner only until `expiresAt − ttl/3` of its last
 * successful renewal (clocks of one machine; on several machines assume bounded skew).
 */
import type { ControlClient } from '../cli/client/control-client.ts';
import { rolloutKeys } from './rollout-status.ts';

export interface OwnerLeaseOptions {
  id: string;
  ttlMs?: number;
  onChange?: (held: boolean) => void;
  now?: () => number;
}

export class OwnerLease {
  readonly #client: ControlClient;
  readonly #id: string;
  readonly #ttl: number;
  readonly #onChange: (held: boolean) => void;
  readonly #now: () => number;
  #validUntil = 0;
  #held = false;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(client: ControlClient, o: OwnerLeaseOptions) {
    this.#client = client;
    this.#id = o.id;
    this.#ttl = o.ttlMs ?? 10_000;
    this.#onChange = o.onChange ?? (() => {});
    this.#now = o.now ?? Date.now;
  }

  /** Whether this controller may act now. */
  get held(): boolean {
    return this.#held && this.#now() < this.#validUntil;
  }

  /** Try once now, then keep trying/renewing every ttl/3. */
  async start(): Promise<void> {
    await this.#tick();
  }

  async #tick(): Promise<void> {
    if (this.#closed) return;
    try {
      const cur = (await this.#client.kvGet(rolloutKeys.owner)).body;
      const now = this.#now();
      const v = cur ? (safeParse(cur.value) as { id?: string; expiresAt?: number }) : undefined;
      const mine = v?.id === this.#id;
      const free = !cur || mine || !(typeof v?.expiresAt === 'number' && v.expiresAt > now);
      if (free) {
        const value = JSON.stringify({ id: this.#id, expiresAt: now + this.#ttl });
        const r = await this.#client.kvPut(rolloutKeys.owner, value, cur ? cur.modRevision : 0);
        if (r.body.ok) this.#validUntil = now + this.#ttl - this.#ttl / 3;
        this.#set(r.body.ok);
      } else this.#set(false);
    } catch {
      // Unreachable control plane: keep acting only until the last renewal runs out.
      if (this.#now() >= this.#validUntil) this.#set(false);
    }
    if (!this.#closed) {
      this.#timer = setTimeout(() => void this.#tick(), this.#ttl / 3);
      this.#timer.unref();
    }
  }

  #set(held: boolean): void {
    if (held === this.#held) return;
    this.#held = held;
    this.#onChange(held);
  }

  /** Stop renewing and release the lease (so a successor need not wait it out). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    if (!this.#held) return;
    this.#held = false;
    try {
      const cur = (await this.#client.kvGet(rolloutKeys.owner)).body;
      if (cur && (safeParse(cur.value) as { id?: string })?.id === this.#id)
        await this.#client.kvDelete(rolloutKeys.owner, { cas: cur.modRevision });
    } catch {}
  }
}

function safeParse(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
}
