/** Test support for identity: temp dirs, real openssl, and the control plane with a CA. */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export async function tempDir(): Promise<{ dir: string; close(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'hexmesh-id-'));
  return { dir, close: () => rm(dir, { recursive: true, force: true }) };
}

/** Run openssl; returns stdout+stderr and the exit status (never throws on a non-zero exit). */
export async function openssl(args: string[]): Promise<{ ok: boolean; out: string }> {
  try {
    const r = await run('openssl', args, { timeout: 20_000 });
    return { ok: true, out: r.stdout + r.stderr };
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    return { ok: false, out: `${err.stdout ?? ''}${err.stderr ?? ''}${err.message}` };
  }
}

/** `openssl verify -CAfile bundle -untrusted intermediate leaf`, with files in `dir`. */
export async function opensslVerify(
  dir: string,
  bundlePem: string,
  chainPem: string,
  attime?: number,
): Promise<{ ok: boolean; out: string }> {
  const certs = chainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
  const tag = Math.random().toString(36).slice(2);
  const [b, i, l] = ['bundle', 'inter', 'leaf'].map((n) => join(dir, `${n}-${tag}.pem`));
  await writeFile(b, bundlePem);
  await writeFile(i, certs.slice(1).join(''));
  await writeFile(l, certs[0] ?? '');
  return openssl([
    'verify',
    ...(attime ? ['-attime', String(Math.floor(attime / 1000))] : []),
    '-CAfile',
    b,
    '-untrusted',
    i,
    l,
  ]);
}
