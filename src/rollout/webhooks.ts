/**
 * Rollout webhooks (Flagger's): the controller POSTs JSON to the hook's URL; any 2xx is a
 * pass, anything else (status, refused, timeout) a failure. `pre-rollout` gates the start,
 * `rollout` is an analysis check every interval, `confirm-promotion` gates promotion,
 * `post-rollout` and `rollback` are told (their result is recorded, not acted on).
 */
import type { RolloutAnalysis } from '../config/resources.ts';
import type { CheckResult } from './rollout-status.ts';

export type Webhook = RolloutAnalysis['webhooks'][number];

export interface WebhookPayload {
  name: string;
  namespace: string;
  service: string;
  revision: number;
  phase: string;
  weight: number;
}

/** Call one hook; the answer as a check named `webhook:<name or type>`. */
export async function callWebhook(h: Webhook, payload: WebhookPayload): Promise<CheckResult> {
  const name = `webhook:${h.name ?? h.type}`;
  try {
    const r = await fetch(h.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...payload, type: h.type, metadata: h.metadata ?? {} }),
      signal: AbortSignal.timeout(h.timeout),
    });
    const text = (await r.text()).slice(0, 200);
    const pass = r.status >= 200 && r.status < 300;
    return {
      name,
      value: r.status,
      threshold: 200,
      pass,
      ...(pass ? {} : { message: `${h.url} answered ${r.status} ${text}` }),
    };
  } catch (err) {
    return { name, value: null, threshold: 200, pass: false, message: `${h.url}: ${(err as Error).message}` };
  }
}

/** Call every hook of one type; all pass, or the failures. */
export async function callWebhooks(
  hooks: readonly Webhook[],
  type: Webhook['type'],
  payload: WebhookPayload,
): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  for (const h of hooks) if (h.type === type) out.push(await callWebhook(h, payload));
  return out;
}
