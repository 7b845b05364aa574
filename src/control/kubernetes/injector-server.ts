/**
 * The injection webhook as `hexmesh control --kubernetes --inject-listen` runs it: HTTPS with
 * a serving certificate from the mesh CA (the MutatingWebhookConfiguration's caBundle is the
 * CA's trust bundle, `GET /v1/identity/bundle`), re-issued at half its lifetime.
 */
import { isIP } from 'node:net';
import type { CertificateAuthority } from '../../identity/ca.ts';
import { servingNames } from '../control-plane.ts';
import { InjectionWebhook } from './injector.ts';

export interface InjectorServerOptions {
  ca: CertificateAuthority;
  listen: { address: string; port: number };
  /** Names the API server reaches the webhook by (its Service's DNS names). */
  dnsNames: readonly string[];
  image: string;
  control: readonly string[];
  onError?(err: unknown): void;
}

export async function startInjector(
  opts: InjectorServerOptions,
): Promise<{ url: string; webhook: InjectionWebhook; close(): Promise<void> }> {
  await opts.ca.start();
  const names = [...new Set([...opts.dnsNames, ...servingNames(opts.listen.address, [])])];
  const issue = async () => {
    const c = await opts.ca.issueServing({
      dnsNames: names.filter((n) => !isIP(n)),
      ipAddresses: names.filter((n) => isIP(n)),
    });
    return { certPem: c.certChainPem, keyPem: c.keyPem, notBefore: c.notBefore, notAfter: c.notAfter };
  };
  let cert = await issue();
  const webhook = new InjectionWebhook(cert, {
    image: opts.image,
    control: opts.control,
    version: opts.image,
    ...(opts.onError && { onError: opts.onError }),
  });
  const a = await webhook.listen(opts.listen.port, opts.listen.address);
  let timer: NodeJS.Timeout | undefined;
  const schedule = () => {
    const half = (Date.parse(cert.notAfter) - Date.parse(cert.notBefore)) / 2;
    const at = Date.parse(cert.notBefore) + half - Date.now();
    timer = setTimeout(
      () =>
        void issue().then(
          (c) => {
            cert = c;
            webhook.setCertificate(c);
            schedule();
          },
          (err: unknown) => {
            opts.onError?.(err);
            // Try again in a minute; the current certificate is still valid for a while.
            timer = setTimeout(schedule, 60_000);
          },
        ),
      Math.max(1000, Math.min(at, 2 ** 31 - 1)),
    );
    timer.unref();
  };
  schedule();
  const host = a.address.includes(':') ? `[${a.address}]` : a.address;
  return {
    url: `https://${host}:${a.port}/inject`,
    webhook,
    close: async () => {
      clearTimeout(timer);
      await webhook.close();
    },
  };
}
