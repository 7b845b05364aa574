/**
 * HTTP/1.1 `Upgrade` passthrough (WebSocket and friends): forward the upgrade request to
 * the target; on 101 relay the response head, then splice the two sockets.
 */
import http from 'node:http';
import https from 'node:https';
import type { ConnectionOptions } from 'node:tls';
import type { Duplex } from 'node:stream';
import type { MeshRequest } from '../core/dispatch.ts';
import { ERROR_HEADER } from '../core/error-response.ts';
import { fromSocketError, type HexmeshError } from '../../errors/hexmesh-error.ts';

export interface UpgradeTarget {
  host: string;
  port: number;
  connectTimeout: number;
  /** Close the tunnel after this long without a byte either way (ms; semantics.md TCP idle, 1 h). */
  idleTimeout: number;
  /** Upgrade over TLS (mTLS to a sidecar): options for the TLS connection. */
  tls?: ConnectionOptions;
}

function rawHead(
  status: number,
  message: string,
  headers: http.IncomingHttpHeaders | NodeJS.Dict<string | string[]>,
): string {
  let s = `HTTP/1.1 ${status} ${message}\r\n`;
  for (const k in headers) {
    const v = headers[k];
    if (v === undefined) continue;
    for (const one of Array.isArray(v) ? v : [v]) s += `${k}: ${one}\r\n`;
  }
  return `${s}\r\n`;
}

/** Write a synthetic error on a raw socket that asked to upgrade. */
export function failUpgrade(socket: Duplex, err: HexmeshError): void {
  const body = `${err.message}\n`;
  socket.end(
    rawHead(err.status, http.STATUS_CODES[err.status] ?? 'Error', {
      'content-type': 'text/plain',
      'content-length': String(Buffer.byteLength(body)),
      connection: 'close',
      [ERROR_HEADER]: err.header,
    }) + body,
  );
}

export function proxyUpgrade(
  req: MeshRequest,
  client: Duplex,
  head: Buffer,
  target: UpgradeTarget,
  upgradeHeader: string,
): void {
  const headers: http.OutgoingHttpHeaders = {
    ...req.headers,
    host: req.authority,
    connection: 'Upgrade',
    upgrade: upgradeHeader,
  };
  const upReq = (target.tls ? https : http).request({
    ...(target.tls ? { ...target.tls, ALPNProtocols: ['http/1.1'] } : {}),
    host: target.host,
    port: target.port,
    method: req.method,
    path: req.path,
    headers,
    timeout: target.connectTimeout,
    agent: false,
  });
  client.on('error', () => upReq.destroy());
  upReq.once('timeout', () =>
    upReq.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' })),
  );
  upReq.once('upgrade', (res, upSocket, upHead) => {
    upReq.setTimeout(0);
    // Every byte of the tunnel passes through upSocket, both ways: its idle timer is the tunnel's.
    upSocket.setTimeout(target.idleTimeout, () => {
      upSocket.destroy();
      client.destroy();
    });
    client.write(rawHead(101, res.statusMessage ?? 'Switching Protocols', res.headers));
    if (upHead.length) client.write(upHead);
    if (head.length) upSocket.write(head);
    upSocket.on('error', () => client.destroy());
    client.on('error', () => upSocket.destroy());
    upSocket.pipe(client);
    client.pipe(upSocket);
  });
  upReq.once('response', (res) => {
    // The target refused the upgrade: relay its answer as is.
    client.write(rawHead(res.statusCode ?? 502, res.statusMessage ?? '', res.headers));
    res.pipe(client);
  });
  upReq.once('error', (err) => {
    if (client.writable)
      failUpgrade(client, fromSocketError(err, `${target.host}:${target.port}`, req.ctx.dstService));
  });
  upReq.end();
}
