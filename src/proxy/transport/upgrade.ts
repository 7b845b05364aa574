/**
 * HTTP/1.1 `Upgrade` passthrough (WebSocket and friends): forward the upgrade request to
 * the target; on 101 relay the response head, then splice the two sockets.
 */
import http from 'node:http';
import https from 'node:https';
import type { ConnectionOptions } from 'node:tls';
import { Transform, type Duplex, type TransformCallback } from 'node:stream';
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

/**
 * The target refused the upgrade with an ordinary response: relay it, then close (the client's
 * connection left the HTTP server with its upgrade request). Node's parser has de-chunked the
 * body, so a chunked body is chunked again here, trailers included; a body of known length or
 * none is relayed as is.
 */
function relayRefusal(method: string, res: http.IncomingMessage, client: Duplex): void {
  const status = res.statusCode ?? 502;
  const headers: NodeJS.Dict<string | string[]> = { ...res.headers, connection: 'close' };
  delete headers['keep-alive'];
  const chunked = headers['transfer-encoding'] !== undefined;
  delete headers['transfer-encoding'];
  const bodiless = method === 'HEAD' || status === 204 || status === 304;
  if (chunked && !bodiless) headers['transfer-encoding'] = 'chunked';
  client.write(rawHead(status, res.statusMessage ?? '', headers));
  if (bodiless) {
    res.resume();
    client.end();
    return;
  }
  client.on('error', () => res.destroy());
  res.on('error', () => client.destroy());
  if (!chunked) {
    res.pipe(client);
    return;
  }
  res.pipe(new ChunkedEncoder(res)).pipe(client);
}

/** HTTP/1.1 chunked framing of a de-chunked body, with the source's trailers at the end. */
class ChunkedEncoder extends Transform {
  constructor(private readonly source: http.IncomingMessage) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (chunk.length > 0) {
      this.push(`${chunk.length.toString(16)}\r\n`);
      this.push(chunk);
      this.push('\r\n');
    }
    done();
  }

  override _flush(done: TransformCallback): void {
    let tail = '0\r\n';
    const raw = this.source.rawTrailers;
    for (let i = 0; i + 1 < raw.length; i += 2) tail += `${raw[i]}: ${raw[i + 1]}\r\n`;
    done(null, `${tail}\r\n`);
  }
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
  upReq.once('response', (res) => relayRefusal(req.method, res, client));
  upReq.once('error', (err) => {
    if (client.writable)
      failUpgrade(client, fromSocketError(err, `${target.host}:${target.port}`, req.ctx.dstService));
  });
  upReq.end();
}
