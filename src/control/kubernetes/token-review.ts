/**
 * Workload identity from Kubernetes: a sidecar proves who it is with its Pod's projected
 * ServiceAccount token (audience `hexmesh`), and the API server says whose it is
 * (TokenReview). The identity is the ServiceAccount: `spiffe://<td>/ns/<ns>/sa/<sa>`.
 *
 * The audience matters: a token minted for the API server (the default audience) or for
 * another system is refused, so a token leaked from elsewhere does not buy a certificate.
 */
import { KubeApi, KubeApiError } from './kube-api.ts';

/** The audience of the projected token the injected sidecar mounts. */
export const TOKEN_AUDIENCE = 'hexmesh';
const SA_PREFIX = 'system:serviceaccount:';
/**
 * A ServiceAccount token is a JWS in compact form: three base64url parts. A projected one is
 * about 1 KiB; 16 KiB leaves room for any claims Kubernetes adds.
 */
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
export const MAX_TOKEN_LENGTH = 16 * 1024;

export interface ServiceAccountIdentity {
  namespace: string;
  serviceAccount: string;
  /** The Pod the token is bound to, when it is (projected tokens are). */
  pod?: string;
}

export class TokenReviewer {
  readonly #api: KubeApi;
  readonly #audience: string;

  constructor(api: KubeApi, opts: { audience?: string } = {}) {
    this.#api = api;
    this.#audience = opts.audience ?? TOKEN_AUDIENCE;
  }

  static async load(kubeconfig?: string, opts: { audience?: string } = {}): Promise<TokenReviewer> {
    return new TokenReviewer(await KubeApi.load(kubeconfig), opts);
  }

  /**
   * The ServiceAccount a token belongs to, or undefined when the API server does not
   * authenticate it for our audience (expired, revoked, deleted Pod, another audience, not
   * a ServiceAccount, not a JWT at all: that one without asking). Throws only when the API
   * server cannot be asked.
   */
  async review(token: string): Promise<ServiceAccountIdentity | undefined> {
    // The certificate endpoint is public: without this, each string sent there as a token was
    // one TokenReview (up to the body limit in size) the control plane made the API server
    // answer, and an empty one a 400 from it that surfaced as an API error.
    if (token.length > MAX_TOKEN_LENGTH || !JWT_SHAPE.test(token)) return undefined;
    const path = '/apis/authentication.k8s.io/v1/tokenreviews';
    const r = await this.#api.request('POST', path, {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenReview',
      spec: { token, audiences: [this.#audience] },
    });
    if (r.status !== 201 && r.status !== 200) throw new KubeApiError('POST', path, r);
    const status = (
      JSON.parse(r.body) as {
        status?: {
          authenticated?: boolean;
          audiences?: string[];
          user?: { username?: string; extra?: Record<string, string[]> };
        };
      }
    ).status;
    if (!status?.authenticated || !status.audiences?.includes(this.#audience)) return undefined;
    const username = status.user?.username ?? '';
    if (!username.startsWith(SA_PREFIX)) return undefined;
    const [namespace, serviceAccount, ...rest] = username.slice(SA_PREFIX.length).split(':');
    if (!namespace || !serviceAccount || rest.length) return undefined;
    const pod = status.user?.extra?.['authentication.kubernetes.io/pod-name']?.[0];
    return { namespace, serviceAccount, ...(pod ? { pod } : {}) };
  }
}
