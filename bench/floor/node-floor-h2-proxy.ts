/**
 * The HTTP/2 floor (issue 11): the smallest Node proxy that does the hexmesh pair's HTTP/2
 * transport work and nothing else. Node's http2 server takes the app's streams (h2c, or
 * mutual TLS with ALPN h2 on the server side), each becomes a stream on one session to the
 * next hop (h2c, or mutual TLS on the client side), bodies piped both ways, trailers relayed,
 * trailers-only responses kept so. No header inspection, routing, layers or metrics. The gap
 * between it and HAProxy in the same run is what Node's http2 costs; between it and the
 * hexmesh pair, what hexmesh adds.
 *
 *   node --import tsx bench/floor/node-floor-h2-proxy.ts --listen PORT --next PORT
 *     [--tls-in cert,key,ca] [--tls-out cert,key,ca]
 */
import http2 from 'node:http2';
import { floorArgs } from './floor-args.ts';

const args = floorArgs();
const out = args.tlsOut;
const inTls = args.tlsIn;
const { NGHTTP2_INTERNAL_ERROR, NGHTTP2_CANCEL, NGHTTP2_FLAG_END_STREAM } = http2.constants;
const scheme = out ? 'https' : 'http';

let session: http2.ClientHttp2Session | undefined;
function next(): http2.ClientHttp2Session {
  if (session && !session.closed && !session.destroyed) return session;
  const s = http2.connect(`${scheme}://127.0.0.1:${args.next}`, {
    ...(out ? { ...out, servername: 'upstream', minVersion: 'TLSv1.3' as const } : {}),
    peerMaxConcurrentStreams: 1000,
  });
  s.on('error', () => {});
  s.once('close', () => {
    if (session === s) session = undefined;
  });
  session = s;
  return s;
}

function onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
  stream.on('error', () => {});
  const h: http2.OutgoingHttpHeaders = { ...headers, ':scheme': scheme };
  const up = next().request(h, { endStream: stream.endAfterHeaders });
  up.on('error', () => {
    if (!stream.destroyed) stream.close(NGHTTP2_INTERNAL_ERROR);
  });
  if (!stream.endAfterHeaders) stream.pipe(up);
  stream.once('close', () => {
    if (!up.closed) up.close(NGHTTP2_CANCEL);
  });
  up.once('response', (rh, flags) => {
    if (stream.destroyed) return;
    if (flags & NGHTTP2_FLAG_END_STREAM) {
      stream.respond(rh, { endStream: true });
      up.resume();
      return;
    }
    let trailers: http2.IncomingHttpHeaders = {};
    up.once('trailers', (t: http2.IncomingHttpHeaders) => (trailers = t));
    stream.respond(rh, { waitForTrailers: true });
    stream.once('wantTrailers', () => stream.sendTrailers(trailers));
    up.pipe(stream);
  });
}

const server = inTls
  ? http2.createSecureServer({
      ...inTls,
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
    })
  : http2.createServer();
server.on('stream', onStream);
server.listen(args.listen, '127.0.0.1', () => process.stdout.write('listening\n'));
process.on('SIGTERM', () => process.exit(0));
