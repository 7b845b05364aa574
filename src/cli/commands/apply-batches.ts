/**
 * How `hexmesh apply` writes a set of documents so that an interruption (the control plane
 * killed mid-apply, the connection cut) is reported exactly: which documents are in force and
 * which are not (issue 10: a 1,000-document apply interrupted by a crash left a prefix applied
 * and the CLI said only "other side closed").
 *
 * - A set larger than one batch is first checked whole (`POST /v1/apply?dryRun=1`: validation
 *   and resourceVersions, nothing written), then written in batches of APPLY_BATCH documents.
 * - A batch the server answered is known: written (its results), or not written at all (a
 *   refusal: the server checks a whole batch before writing), or written up to the document the
 *   server names (a store failure part-way carries `applied`).
 * - A batch with no answer is read back, document by document, until the control plane answers
 *   again or VERIFY_WINDOW_MS passes: a document whose stored form equals what was sent is in
 *   force, any other is not. The batches after it were never sent.
 */
import { canonicalJson } from '../../control/validate-resource.ts';
import { ControlApiError, type ApplyAnswer, type ControlClient } from '../client/control-client.ts';

/** Documents per `POST /v1/apply` when a set is written in batches. */
export const APPLY_BATCH = 100;
/** How long an interrupted batch is read back for (the control plane may be restarting). */
export const VERIFY_WINDOW_MS = 30_000;

export type ApplyResult = ApplyAnswer['results'][number];

export interface DocRef {
  kind: string;
  namespace: string;
  name: string;
}

/** What an interrupted apply did: every document in exactly one list. */
export interface ApplyInterruption {
  /** Why it stopped (the transport or API error). */
  error: string;
  /** In force: answered by the server, or read back equal to what was sent. */
  applied: ApplyResult[];
  /** Not in force (refused, not written, or never sent). */
  notApplied: DocRef[];
  /** Could not be read back within the window: the control plane stayed unreachable. */
  unknown: DocRef[];
}

export class ApplyInterruptedError extends Error {
  readonly interruption: ApplyInterruption;
  readonly warnings: readonly string[];
  constructor(interruption: ApplyInterruption, warnings: readonly string[]) {
    super(`apply interrupted: ${interruption.error}`);
    this.interruption = interruption;
    this.warnings = warnings;
  }
}

export interface BatchOptions {
  batch?: number;
  verifyWindowMs?: number;
}

/** Apply `docs`; throws ApplyInterruptedError (with every document accounted for) if cut short. */
export async function applyInBatches(
  client: ControlClient,
  docs: readonly unknown[],
  opts: BatchOptions = {},
): Promise<ApplyAnswer> {
  const size = opts.batch ?? APPLY_BATCH;
  let warnings: string[] | undefined;
  // Checked whole first: an invalid or conflicting document anywhere writes nothing at all.
  if (docs.length > size) {
    try {
      warnings = (
        await client.request<ApplyAnswer>('POST', '/v1/apply', { query: { dryRun: true }, body: docs })
      ).body.warnings;
    } catch (err) {
      // A refusal is reported as such; no answer at all still means nothing was written.
      if (!(err instanceof ControlApiError) || (err.status !== 0 && err.status < 500)) throw err;
      throw new ApplyInterruptedError(
        { error: err.message, applied: [], notApplied: docs.map(refOf), unknown: [] },
        [],
      );
    }
  }
  const results: ApplyResult[] = [];
  for (let start = 0; start < docs.length; start += size) {
    const batch = docs.slice(start, start + size);
    let answer: ApplyAnswer;
    try {
      answer = (await client.apply(batch)).body;
    } catch (err) {
      // A small set that the server refused is an ordinary refusal (nothing was written).
      if (docs.length <= size && err instanceof ControlApiError && err.status >= 400 && err.status < 500)
        throw err;
      const rest = docs.slice(start + size).map(refOf);
      const settled = await settleBatch(client, batch, err, opts.verifyWindowMs ?? VERIFY_WINDOW_MS);
      throw new ApplyInterruptedError(
        {
          error: (err as Error).message,
          applied: [...results, ...settled.applied],
          notApplied: [...settled.notApplied, ...rest],
          unknown: settled.unknown,
        },
        warnings ?? [],
      );
    }
    results.push(...answer.results);
    warnings ??= answer.warnings;
  }
  return { results, warnings: warnings ?? [] };
}

/** What became of the documents of the batch that failed with `err`. */
async function settleBatch(
  client: ControlClient,
  batch: readonly unknown[],
  err: unknown,
  windowMs: number,
): Promise<Omit<ApplyInterruption, 'error'>> {
  const refs = batch.map(refOf);
  if (err instanceof ControlApiError && err.status !== 0) {
    const applied = err.details.applied as ApplyResult[] | undefined;
    // The server stopped part-way and says where: exactly those were written.
    if (Array.isArray(applied)) return { applied, notApplied: refs.slice(applied.length), unknown: [] };
    // A refusal (4xx): the server checks the whole batch before writing any of it.
    if (err.status < 500) return { applied: [], notApplied: refs, unknown: [] };
  }
  // No answer (or a 5xx that does not say): read each document back.
  const out: Omit<ApplyInterruption, 'error'> = { applied: [], notApplied: [], unknown: [] };
  const deadline = Date.now() + windowMs;
  for (let i = 0; i < batch.length; i++) {
    const ref = refs[i];
    const stored = await readBack(client, ref, deadline);
    if (stored === 'unreachable') out.unknown.push(ref);
    else if (stored && sameDocument(stored.doc, batch[i]))
      out.applied.push({ ...ref, action: 'configured', resourceVersion: stored.resourceVersion });
    else out.notApplied.push(ref);
  }
  return out;
}

/** The stored document, null when absent, 'unreachable' when no answer came before `deadline`. */
async function readBack(
  client: ControlClient,
  ref: DocRef,
  deadline: number,
): Promise<{ doc: unknown; resourceVersion: string } | null | 'unreachable'> {
  const path = `/v1/resources/${encodeURIComponent(ref.kind)}/${encodeURIComponent(ref.namespace)}/${encodeURIComponent(ref.name)}`;
  for (;;) {
    try {
      const res = await client.request<{ metadata: { resourceVersion?: string } }>('GET', path, {
        accept: [404],
      });
      if (res.status === 404) return null;
      return { doc: res.body, resourceVersion: res.body.metadata.resourceVersion ?? '' };
    } catch (err) {
      const retry = err instanceof ControlApiError && (err.status === 0 || err.status >= 500);
      if (!retry) throw err;
      if (Date.now() >= deadline) return 'unreachable';
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

function refOf(doc: unknown): DocRef {
  const d = doc as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } };
  return {
    kind: String(d?.kind ?? ''),
    namespace: typeof d?.metadata?.namespace === 'string' ? d.metadata.namespace : 'default',
    name: String(d?.metadata?.name ?? ''),
  };
}

/** Stored as sent? The server stores the document as written, namespace defaulted (validate-resource.ts). */
function sameDocument(stored: unknown, sent: unknown): boolean {
  const strip = (doc: unknown) => {
    const d = JSON.parse(JSON.stringify(doc)) as { metadata: Record<string, unknown> };
    d.metadata.namespace ??= 'default';
    delete d.metadata.resourceVersion;
    delete d.metadata.creationTimestamp;
    return canonicalJson(d);
  };
  return strip(stored) === strip(sent);
}
