// Shared by the shop's services: plain Node, no mesh library. Every call to another service
// goes to the local sidecar (HEXMESH_OUTBOUND) with the service's name as Host, which is all
// an app needs to do to be in the mesh.
import http from 'node:http';

const [sidecarHost, sidecarPort] = (process.env.HEXMESH_OUTBOUND ?? '127.0.0.1:4140').split(':');
export const SERVICE = process.env.HEXMESH_SERVICE ?? 'app';
export const VERSION = process.env.VERSION ?? 'v1';

/** GET http://<service><path> through the sidecar; resolves {status, body (parsed JSON or text), headers}. */
export function call(service, path, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: sidecarHost,
        port: Number(sidecarPort),
        method,
        path,
        headers: { host: service, ...headers },
        timeout: 5000,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => {
          let parsed = text;
          try {
            parsed = JSON.parse(text);
          } catch {}
          resolve({ status: res.statusCode, headers: res.headers, body: parsed });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`calling ${service}: timeout`)));
    req.on('error', reject);
    if (body !== undefined) req.setHeader('content-type', 'application/json');
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** Serve `routes` (`'GET /path'` → async (req, body) => [status, json]) on PORT, plus GET /health. */
export function serve(routes) {
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    let body = '';
    for await (const chunk of req) body += chunk;
    const key = `${req.method} ${url.pathname}`;
    const handler =
      routes[key] ??
      Object.entries(routes).find(([k]) => k.endsWith('*') && key.startsWith(k.slice(0, -1)))?.[1];
    try {
      if (key === 'GET /health') return send(res, 200, { status: 'ok', service: SERVICE, version: VERSION });
      if (!handler) return send(res, 404, { error: `no route ${key}` });
      const [status, out, type, headers] = await handler(url, body ? JSON.parse(body) : undefined, req);
      if (type) {
        res.writeHead(status, { 'content-type': type, ...headers });
        return res.end(out);
      }
      send(res, status, out);
    } catch (err) {
      send(res, 500, { error: String(err?.message ?? err) });
    }
  });
  const port = Number(process.env.PORT ?? 8080);
  server.listen(port, '127.0.0.1', () => console.log(`${SERVICE} ${VERSION} listening on 127.0.0.1:${port}`));
  const stop = () => server.close(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  return server;
}

function send(res, status, json) {
  const text = JSON.stringify(json);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
