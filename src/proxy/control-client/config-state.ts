/**
 * What the control plane says this proxy should have: services and resources, updated by
 * snapshots (replace all) and deltas (upsert/remove). It tracks the desired state even when
 * an update is refused, so a later fix arrives as a delta on top of it; the config in force
 * stays the last one that built.
 */
import { validate } from '../../config/validate.ts';
import { proxyConfigSchema, type ProxyConfig } from '../../config/proxy-config.ts';

interface Named {
  name?: unknown;
  namespace?: unknown;
}
interface ResourceDoc {
  kind?: unknown;
  metadata?: Named;
}

export interface SnapshotMessage {
  version: number;
  services: unknown[];
  resources: unknown[];
  subscriptions?: string[];
}

export interface DeltaMessage {
  version: number;
  upserts?: { services?: unknown[]; resources?: unknown[] };
  removes?: { services?: string[]; resources?: { kind: string; namespace?: string; name: string }[] };
}

export class ConfigState {
  readonly services = new Map<string, unknown>();
  readonly resources = new Map<string, unknown>();
  version = 0;

  replace(m: SnapshotMessage): void {
    this.services.clear();
    this.resources.clear();
    this.version = m.version;
    for (const s of m.services ?? []) this.#putService(s);
    for (const r of m.resources ?? []) this.#putResource(r);
  }

  apply(m: DeltaMessage): void {
    this.version = m.version;
    for (const k of m.removes?.services ?? []) this.services.delete(k);
    for (const r of m.removes?.resources ?? [])
      this.resources.delete(`${r.kind}/${r.namespace ?? 'default'}/${r.name}`);
    for (const s of m.upserts?.services ?? []) this.#putService(s);
    for (const r of m.upserts?.resources ?? []) this.#putResource(r);
  }

  #putService(s: unknown): void {
    const n = s as Named;
    this.services.set(`${String(n?.name)}.${typeof n?.namespace === 'string' ? n.namespace : 'default'}`, s);
  }

  #putResource(r: unknown): void {
    const d = r as ResourceDoc;
    const ns = typeof d?.metadata?.namespace === 'string' ? d.metadata.namespace : 'default';
    this.resources.set(`${String(d?.kind)}/${ns}/${String(d?.metadata?.name)}`, r);
  }

  /** Validate into a frozen ProxyConfig; throws ConfigError naming every bad field. */
  build(settings: Record<string, unknown>): ProxyConfig {
    return validate(
      proxyConfigSchema,
      {
        version: this.version,
        proxy: settings,
        services: [...this.services.values()],
        resources: [...this.resources.values()],
      },
      `control plane update ${this.version}`,
    );
  }
}
