/**
 * A certificate issued for `web`, in the hands of a process that is not a sidecar (curl),
 * against the sidecar of `exact` in STRICT mode: authorization is bound to the SPIFFE ID of
 * the verified client certificate, whatever the process says about itself in headers
 * (`x-hexmesh-client`, `x-forwarded-client-cert`) or in its path. The CA, the join tokens,
 * the sidecar (its certificate and policies from discovery) are real; the attacker is curl.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createKeyAndCsr } from '../../src/identity/csr.ts';
import { startControlledProxy } from '../../src/proxy/control-client/controlled-proxy.ts';
import { curl } from '../support/clients.ts';
import { startHttpServer } from '../support/mesh.ts';
import { call, eventually, startCp } from '../control/helpers.ts';
import { tempDir } from './helpers.ts';

const any = { address: '127.0.0.1', port: 0 };
const ID = (sa: string) => `spiffe://hexmesh.local/ns/default/sa/${sa}`;

test(
  "a web certificate used by curl against exact's STRICT sidecar is judged as web, whatever its headers say",
  { timeout: 120_000 },
  async () => {
    const t = await startCp({ identity: {}, discovery: true });
    const d = await tempDir();
    const seen: string[] = [];
    const app = await startHttpServer((req, res) => {
      seen.push(req.url ?? '');
      res.end(`exact ${req.url}`);
    });
    let exact: Awaited<ReturnType<typeof startControlledProxy>> | undefined;
    try {
      const put = async (r: {
        apiVersion: string;
        kind: string;
        metadata: { name: string; namespace: string };
        spec: unknown;
      }) => {
        const a = await call(t.url, 'PUT', `/v1/resources/${r.kind}/default/${r.metadata.name}`, r);
        assert.ok(a.status === 200 || a.status === 201, JSON.stringify(a.body));
      };
      await put({
        apiVersion: 'hexmesh.io/v1alpha1',
        kind: 'PeerAuthentication',
        metadata: { name: 'exact-strict', namespace: 'default' },
        spec: { targetRef: { kind: 'Service', name: 'exact' }, mode: 'STRICT' },
      });
      // client may call anything; web only /public.
      await put({
        apiVersion: 'hexmesh.io/v1alpha1',
        kind: 'AuthorizationPolicy',
        metadata: { name: 'exact-callers', namespace: 'default' },
        spec: {
          targetRef: { kind: 'Service', name: 'exact' },
          action: 'ALLOW',
          rules: [
            { from: [{ source: { principals: [ID('client')] } }] },
            { from: [{ source: { principals: [ID('web')] } }], to: [{ operation: { paths: ['/public'] } }] },
          ],
        },
      });
      const token = async (sa: string) => (await t.cp.identity.tokens.create('default', sa, 600_000)).token;
      exact = await startControlledProxy({
        control: [t.url],
        id: 'exact-1',
        settings: { service: 'exact', inbound: any, outbound: any, admin: any, app: { port: app.port } },
        identity: { joinToken: await token('exact') },
        client: { backoff: { initial: 50, max: 500 }, log: () => {} },
      });
      await exact.identity!.ready(AbortSignal.timeout(20_000));

      /** A certificate for `sa` from the CA, on disk for curl. */
      const certFiles = async (sa: string) => {
        const kc = await createKeyAndCsr();
        const r = await call(t.url, 'POST', '/v1/identity/certificate', {
          csr: kc.csrPem,
          token: await token(sa),
        });
        assert.equal(r.status, 200, JSON.stringify(r.body));
        const cert = join(d.dir, `${sa}.pem`);
        const key = join(d.dir, `${sa}.key`);
        await writeFile(cert, r.body.certChainPem);
        await writeFile(key, kc.keyPem, { mode: 0o600 });
        return ['--cert', cert, '--key', key];
      };
      const web = await certFiles('web');
      const client = await certFiles('client');
      const port = exact.addr.inbound.port;
      let clientAdmin = 0;
      /** curl straight at exact's inbound listener; the status (000: no HTTP answer). */
      const hit = async (args: string[], path: string, scheme = 'https') => {
        const r = await curl([
          '--insecure', // the attacker does not care who the server is
          '--path-as-is',
          '-o',
          '/dev/null',
          '-w',
          '%{http_code}',
          '-H',
          'host: exact',
          ...args,
          `${scheme}://127.0.0.1:${port}${path}`,
        ]);
        const status = r.stdout.toString();
        if (args === client && path === '/admin' && status === '200') clientAdmin++;
        return status;
      };
      // The policies are in force once client is let in and web is kept to /public.
      await eventually('the STRICT policy and the AuthorizationPolicy in force on exact', async () => {
        return (await hit(client, '/admin')) === '200' && (await hit(web, '/admin')) === '403';
      });

      const lies = [
        ['-H', 'x-hexmesh-client: client'],
        ['-H', `x-forwarded-client-cert: By=${ID('exact')};URI=${ID('client')}`],
        ['-H', `x-hexmesh-peer-identity: ${ID('client')}`],
      ];
      for (const lie of lies)
        assert.equal(await hit([...web, ...lie], '/admin'), '403', `web claiming to be client: ${lie[1]}`);
      assert.equal(await hit(web, '/public/../admin'), '403', 'a dot-segment path is the path it leads to');
      assert.equal(await hit(web, '/public'), '200', "web's certificate is web's, sidecar or not");
      assert.equal(await hit(client, '/admin'), '200');
      // STRICT: no certificate or no TLS gets no answer at all.
      assert.equal(await hit([], '/public'), '000', 'TLS without a client certificate');
      assert.equal(await hit(['-H', 'x-hexmesh-client: client'], '/public', 'http'), '000', 'plaintext');
      // The app saw /public from web and /admin from client only.
      assert.deepEqual(
        seen.filter((p) => p !== '/public'),
        Array.from({ length: clientAdmin }, () => '/admin'),
        'nothing of web reached the app but /public',
      );
    } finally {
      await exact?.close();
      await app.close();
      await t.close();
      await d.close();
    }
  },
);
