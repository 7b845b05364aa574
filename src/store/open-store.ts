import { join } from 'node:path';
import { SqliteStore } from './sqlite-store.ts';
import { StoreError, type Store } from './store.ts';

/** File name of the embedded store inside the data directory. */
export const EMBEDDED_DB_FILE = 'hexmesh.db';

/**
 * Parse `--store etcd://host:2379,host:2379` into client endpoints (`http://host:2379`).
 * `etcds://` selects TLS (`https://`). Throws StoreError naming the bad part.
 */
export function parseEtcdUrl(url: string): string[] {
  const m = /^(etcds?):\/\/(.*)$/.exec(url);
  if (!m)
    throw new StoreError(
      'HEXMESH_ERR_STORE_URL',
      `--store ${url}: expected 'embedded' or etcd://host:port[,host:port...]`,
    );
  const scheme = m[1] === 'etcds' ? 'https' : 'http';
  const hosts = m[2]!
    .replace(/\/+$/, '')
    .split(',')
    .map((h) => h.trim());
  if (hosts.length === 0 || hosts.some((h) => h === '')) {
    throw new StoreError('HEXMESH_ERR_STORE_URL', `--store ${url}: empty host in the endpoint list`);
  }
  return hosts.map((h) => {
    let parsed: URL;
    try {
      parsed = new URL(`${scheme}://${h}`);
    } catch {
      throw new StoreError('HEXMESH_ERR_STORE_URL', `--store ${url}: invalid endpoint '${h}'`);
    }
    if (parsed.pathname !== '/' || parsed.search || parsed.username) {
      throw new StoreError('HEXMESH_ERR_STORE_URL', `--store ${url}: endpoint '${h}' must be host:port only`);
    }
    return `${scheme}://${parsed.host.includes(':') || parsed.port ? parsed.host : `${parsed.host}:2379`}`;
  });
}

/**
 * Open the store the control plane was told to use: undefined or 'embedded' opens SQLite
 * at `<dataDir>/hexmesh.db`; `etcd://h1:2379,h2:2379` connects to an etcd cluster.
 */
export async function openStore(url: string | undefined, dataDir: string): Promise<Store> {
  if (url === undefined || url === '' || url === 'embedded') {
    return SqliteStore.open(join(dataDir, EMBEDDED_DB_FILE));
  }
  const endpoints = parseEtcdUrl(url);
  const { EtcdStore } = await import('./etcd-store.ts');
  return EtcdStore.connect(endpoints);
}
