/**
 * The injection webhook's CA bundle: the manifests (`hexmesh install --kubernetes`, the Helm
 * chart) cannot know the mesh CA, which the control plane makes or imports when it starts,
 * so they leave `caBundle` out and the control plane writes it — at start, then every
 * minute if it differs (a re-created configuration, a root rotation), as Istio's webhook
 * controller does. Until then the API server cannot call the webhook and, with
 * `failurePolicy: Ignore`, Pods start unmeshed.
 *
 * The patch is a strategic merge on the webhooks list (merge key `name`), so it touches only
 * `clientConfig.caBundle`; a later `kubectl apply` of the manifests leaves that field alone
 * (it is not in them).
 */
import { KubeApiError, type KubeApi } from './kube-api.ts';
import { WEBHOOK_CONFIGURATION } from './rbac.ts';

const PATH = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations';

/** Write `bundlePem` into every webhook of the configuration that lacks it; true when it changed. */
export async function syncWebhookCaBundle(
  api: KubeApi,
  bundlePem: string,
  name = WEBHOOK_CONFIGURATION,
): Promise<boolean> {
  const path = `${PATH}/${name}`;
  const r = await api.request('GET', path);
  if (r.status !== 200) throw new KubeApiError('GET', path, r);
  const want = Buffer.from(bundlePem).toString('base64');
  const hooks = (
    JSON.parse(r.body) as { webhooks?: { name: string; clientConfig?: { caBundle?: string } }[] }
  ).webhooks;
  const stale = (hooks ?? []).filter((w) => w.clientConfig?.caBundle !== want);
  if (!stale.length) return false;
  const p = await api.request(
    'PATCH',
    path,
    { webhooks: stale.map((w) => ({ name: w.name, clientConfig: { caBundle: want } })) },
    'application/strategic-merge-patch+json',
  );
  if (p.status !== 200) throw new KubeApiError('PATCH', path, p);
  return true;
}

/** Keep the bundle in place: now, then every `everyMs` (default 60 s). */
export function keepWebhookCaBundle(
  api: KubeApi,
  bundle: () => Promise<string>,
  opts: { name?: string; everyMs?: number; log?(msg: string): void } = {},
): { close(): void } {
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let lastError = '';
  const tick = async () => {
    try {
      if (await syncWebhookCaBundle(api, await bundle(), opts.name))
        opts.log?.(`injection webhook ${opts.name ?? WEBHOOK_CONFIGURATION}: caBundle set to the mesh CA`);
      lastError = '';
    } catch (err) {
      const msg = (err as Error).message;
      if (msg !== lastError) opts.log?.(`injection webhook caBundle: ${msg}; trying again`);
      lastError = msg;
    }
    if (!closed) timer = setTimeout(() => void tick(), opts.everyMs ?? 60_000).unref();
  };
  void tick();
  return {
    close: () => {
      closed = true;
      clearTimeout(timer);
    },
  };
}
