/**
 * The proxy admin's `GET /tap?service=&path=&method=&status=&direction=&limit=&rate=`:
 * NDJSON, first a `{"type":"start"}` line (so a client knows it is attached before it
 * sends traffic), then one `request` event per matching request, `dropped` reports, and an
 * `end` line when `limit` is reached or the proxy shuts down.
 */
import type { ServerResponse } from 'node:http';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import { parseTapFilter } from './tap-filter.ts';
import { MAX_TAP_RATE, type TapHub } from './tap-hub.ts';

function positive(q: URLSearchParams, name: string, max: number): number | undefined {
  const raw = q.get(name);
  if (raw === null || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > max)
    throw new HexmeshError(
      'HEXMESH_ERR_CONFIG_INVALID',
      `tap: ${name} must be an integer 1..${max} (got ${JSON.stringify(raw)})`,
    );
  return n;
}

/** Answer a tap request: 400 on a bad filter, 503 when full, else the stream. */
export function serveTap(hub: TapHub, query: URLSearchParams, res: ServerResponse): void {
  let filter, rate, limit;
  try {
    filter = parseTapFilter(query);
    rate = positive(query, 'rate', MAX_TAP_RATE);
    limit = positive(query, 'limit', 1_000_000);
  } catch (err) {
    return plain(res, 400, `${(err as Error).message}\n`);
  }
  if (hub.full) return plain(res, 503, 'tap: too many viewers connected, try again later\n');
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
  try {
    hub.add(res, { filter, rate, limit });
  } catch (err) {
    // Headers are out; say why in-stream and end (a client sees an `error` line, not a hang).
    res.end(`${JSON.stringify({ type: 'error', message: (err as Error).message })}\n`);
    return;
  }
  res.write(`${JSON.stringify({ type: 'start', filter, rate: rate ?? 100, limit: limit ?? null })}\n`);
}

function plain(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}
