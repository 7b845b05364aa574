/**
 * The few things the control plane asks of the Kubernetes API: a kubeconfig (a file, or the
 * pod's service account in-cluster), informers (list + watch, relisting after a broken
 * watch) and plain JSON requests (status writes). `@kubernetes/client-node` loads only here,
 * on first use, so a control plane without `--kubernetes` never carries it.
 */
import https from 'node:https';
import type { Informer, KubeConfig, KubernetesObject, ObjectCache } from '@kubernetes/client-node';
import { HexmeshError } from '../../errors/hexmesh-error.ts';

export type KubeInformer<T extends KubernetesObject> = Informer<T> & ObjectCache<T>;

export interface KubeResponse {
  status: number;
  body: string;
}

export class KubeApi {
  readonly #kc: KubeConfig;
  readonly #lib: typeof import('@kubernetes/client-node');

  private constructor(lib: typeof import('@kubernetes/client-node'), kc: KubeConfig) {
    this.#lib = lib;
    this.#kc = kc;
  }

  /** From a kubeconfig file (its current context), or in-cluster without one. */
  static async load(kubeconfig?: string): Promise<KubeApi> {
    const lib = await import('@kubernetes/client-node');
    const kc = new lib.KubeConfig();
    try {
      if (kubeconfig) kc.loadFromFile(kubeconfig);
      else kc.loadFromCluster();
    } catch (e) {
      throw new HexmeshError(
        'HEXMESH_ERR_CONFIG_INVALID',
        `kubernetes: cannot load ${kubeconfig ? `kubeconfig ${kubeconfig}` : 'the in-cluster service account'}: ${(e as Error).message}`,
        { cause: e },
      );
    }
    if (!kc.getCurrentCluster())
      throw new HexmeshError(
        'HEXMESH_ERR_CONFIG_INVALID',
        `kubernetes: ${kubeconfig ?? 'in-cluster config'} has no current cluster`,
      );
    return new KubeApi(lib, kc);
  }

  /** The API server's URL. */
  get server(): string {
    return this.#kc.getCurrentCluster()!.server;
  }

  /** An informer over a collection path (`/api/v1/services`), not started. */
  informer<T extends KubernetesObject>(path: string): KubeInformer<T> {
    return this.#lib.makeInformer<T>(this.#kc, path, async () => {
      const r = await this.request('GET', path);
      if (r.status !== 200) throw new KubeApiError('GET', path, r);
      return JSON.parse(r.body) as { metadata: { resourceVersion?: string }; items: T[] };
    });
  }

  /** One request; JSON bodies. `contentType` for patches (`application/merge-patch+json`). */
  async request(
    method: string,
    path: string,
    body?: unknown,
    contentType = 'application/json',
  ): Promise<KubeResponse> {
    const url = new URL(path, this.server);
    const opts: https.RequestOptions = {
      method,
      protocol: url.protocol,
      hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: url.port,
      path: `${url.pathname}${url.search}`,
      headers: { accept: 'application/json' },
      timeout: 30_000,
    };
    await this.#kc.applyToHTTPSOptions(opts);
    const data = body === undefined ? undefined : JSON.stringify(body);
    if (data !== undefined) (opts.headers as Record<string, string>)['content-type'] = contentType;
    return new Promise((resolve, reject) => {
      const req = https.request(opts, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in 30 s`)));
      req.on('error', reject);
      req.end(data);
    });
  }
}

/** A refused or failed API request (logged, retried; never shown to a mesh client). */
export class KubeApiError extends Error {
  readonly status: number;
  constructor(method: string, path: string, r: KubeResponse) {
    let reason = r.body.slice(0, 300);
    try {
      reason = (JSON.parse(r.body) as { message?: string }).message ?? reason;
    } catch {
      // not JSON: the text itself
    }
    super(`kubernetes: ${method} ${path}: ${r.status} ${reason}`);
    this.status = r.status;
  }
}
