/**
 * Identity API: certificate signing for workloads (join token or current certificate as
 * proof), the trust bundle (PEM, or JSON with `?format=json`; blocking queries wake on a
 * CA change), join tokens, and root rotation (docs/identity.md).
 */
import type { ServerResponse } from 'node:http';
import { z } from 'zod';
import { parseDuration } from '../../config/duration.ts';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import { CA_KEYS, type CertificateAuthority } from '../../identity/ca.ts';
import { parseJson } from '../http/body.ts';
import { badRequest, notFound } from '../http/error-response.ts';
import type { ApiRequest, Router } from '../http/router.ts';
import { blockIfAsked, flag, type ApiContext } from './context.ts';

const signBody = z.strictObject({
  csr: z.string().min(1).max(16_384),
  /** A join token, or a platform token (a Kubernetes ServiceAccount JWT runs to ~1-2 KB). */
  token: z.string().max(8192).optional(),
  renewal: z
    .strictObject({ certificate: z.string().max(65_536), signature: z.string().max(1024) })
    .optional(),
  /** As a discovery node id; recorded under the identity issued, never across identities. */
  proxyId: z
    .string()
    .min(1)
    .max(253)
    .regex(/^[A-Za-z0-9][-A-Za-z0-9_.]*$/, 'must be letters, digits, - _ .')
    .optional(),
});

const tokenBody = z.strictObject({
  namespace: z.string(),
  serviceAccount: z.string(),
  /** Bind the token (and the certificates it gets) to this one instance id. */
  instance: z.string().optional(),
  ttl: z.union([z.string(), z.number()]).optional(),
});

async function body<T>(req: ApiRequest, schema: z.ZodType<T>): Promise<T> {
  const r = schema.safeParse(parseJson(await req.body()));
  if (!r.success)
    // Messages name the field; values are left out (a body may hold a token).
    throw badRequest(
      `invalid body: ${r.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ')}`,
    );
  return r.data;
}

function wantsJson(req: ApiRequest): boolean {
  return req.query.get('format') === 'json' || (req.headers.accept ?? '').includes('application/json');
}

export function identityRoutes(router: Router, ctx: ApiContext, ca: CertificateAuthority): void {
  router.add(
    'POST',
    '/v1/identity/certificate',
    async (req) => {
      const b = await body(req, signBody);
      // Public: the body carries the proof (join token or current certificate), checked by the
      // CA. A caller that also authenticated as a workload may only get its own identity.
      const p = req.principal;
      const issued = await ca.sign(
        b,
        p?.kind === 'workload'
          ? { spiffeId: p.spiffeId, ...(p.instance !== undefined && { instance: p.instance }) }
          : undefined,
      );
      return { json: issued };
    },
    'public',
  );

  router.add(
    'GET',
    '/v1/identity/bundle',
    async (req) => {
      await ca.start();
      await blockIfAsked(ctx, req, CA_KEYS.state, true);
      const b = await ca.bundle();
      if (wantsJson(req))
        return { json: { trustDomain: b.trustDomain, active: b.active, roots: b.roots }, index: b.revision };
      return {
        stream(res: ServerResponse) {
          res.writeHead(200, {
            'content-type': 'application/x-pem-file',
            'content-length': Buffer.byteLength(b.pem),
            'x-hexmesh-index': String(b.revision),
          });
          res.end(req.method === 'HEAD' ? undefined : b.pem);
        },
      };
    },
    'public',
  );

  router.add('GET', '/v1/identity/ca', async () => ({ json: await ca.authorities() }), 'identity:read');

  router.add('GET', '/v1/identity/certificates', async () => ({ json: await ca.issued() }), 'identity:read');

  router.add(
    'POST',
    '/v1/identity/tokens',
    async (req) => {
      const b = await body(req, tokenBody);
      const ttl = b.ttl === undefined ? 24 * 3_600_000 : parseDuration(b.ttl);
      if (ttl === undefined || ttl <= 0)
        throw badRequest(`ttl must be a positive duration like 24h (got ${JSON.stringify(b.ttl)})`);
      const { token, info } = await ca.tokens.create(b.namespace, b.serviceAccount, ttl, b.instance);
      return { status: 201, json: { token, ...info } };
    },
    'identity:admin',
  );

  router.add('GET', '/v1/identity/tokens', async () => ({ json: await ca.tokens.list() }), 'identity:read');

  router.add(
    'DELETE',
    '/v1/identity/tokens/:id',
    async (req) => {
      if (!(await ca.tokens.revoke(req.params.id)))
        throw notFound(`join token ${JSON.stringify(req.params.id)}`);
      return { json: { id: req.params.id, action: 'revoked' } };
    },
    'identity:admin',
  );

  router.add(
    'GET',
    '/v1/identity/rotation',
    async () => ({ json: await ca.rotationStatus() }),
    'identity:read',
  );

  router.add(
    'POST',
    '/v1/identity/rotation/:step',
    async (req) => {
      const step = req.params.step;
      if (step === 'start') return { json: await ca.startRotation() };
      if (step === 'finish') return { json: await ca.finishRotation(flag(req.query, 'force')) };
      throw new HexmeshError(
        'HEXMESH_ERR_NOT_FOUND',
        `rotation step ${JSON.stringify(step)} not found (start, finish)`,
      );
    },
    'identity:admin',
  );
}
