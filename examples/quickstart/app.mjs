#!/usr/bin/env node
// A tiny service for the quick start. It answers on --port; with --call it also calls
// another service by name through its own sidecar's outbound listener (--via), the way
// any app in the mesh does: plain HTTP with `Host: <service>`, no mesh code.
import http from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    name: { type: 'string', default: 'app' },
    port: { type: 'string', default: '8080' },
    call: { type: 'string' },
    via: { type: 'string', default: '127.0.0.1:4140' },
    version: { type: 'string', default: 'v1' },
  },
});
const [viaHost, viaPort] = values.via.split(':');

function callThroughSidecar(path) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: viaHost, port: Number(viaPort), path, headers: { host: values.call } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const server = http.createServer(async (req, res) => {
  if (req.url === '/health') return res.end('ok\n');
  const mine = { service: values.name, version: values.version, path: req.url };
  if (!values.call) {
    res.setHeader('content-type', 'application/json');
    return res.end(JSON.stringify(mine) + '\n');
  }
  try {
    const up = await callThroughSidecar(req.url);
    res.setHeader('content-type', 'application/json');
    res.end(
      JSON.stringify({
        ...mine,
        upstream: {
          status: up.status,
          meshError: up.headers['x-hexmesh-error'] ?? null,
          body: safeJson(up.body),
        },
      }) + '\n',
    );
  } catch (err) {
    res.statusCode = 502;
    res.end(`cannot reach my sidecar: ${err.message}\n`);
  }
});
function safeJson(s) {
  try {
    return JSON.parse(s);
  } catch {
    return s.trim();
  }
}
server.listen(Number(values.port), '127.0.0.1', () =>
  console.log(`${values.name} listening on 127.0.0.1:${values.port}`),
);
process.on('SIGTERM', () => server.close(() => process.exit(0)));
