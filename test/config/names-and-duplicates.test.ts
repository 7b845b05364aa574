/**
 * Issue 9: names a proxy could never reach and entries that would silently replace each
 * other are refused at validation, with the path of the offending field, instead of "last
 * wins", an unreachable service, or a bind failure after the ready line.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, parseProxyConfig } from '../../src/config/load.ts';
import { parseMeshFile } from '../../src/runtime/mesh-file.ts';

async function problems(fn: () => unknown): Promise<Map<string, string>> {
  try {
    await fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return new Map(err.problems.map((p) => [p.path, p.message]));
  }
  assert.fail('expected the config to be refused');
}

const svc = (name: string, namespace = 'default') => ({
  name,
  namespace,
  endpoints: [{ address: '127.0.0.1', port: 9000 }],
});

test('issue 9: proxy config refuses upper-case and dotted service names, naming the field', async () => {
  const p = await problems(() =>
    parseProxyConfig({
      proxy: { service: 'Web', namespace: 'Shop', upstreams: [{ service: 'API', localPort: 0 }] },
      services: [svc('Reviews'), svc('a.b')],
    }),
  );
  for (const path of [
    'proxy.service',
    'proxy.namespace',
    'proxy.upstreams[0].service',
    'services[0].name',
    'services[1].name',
  ])
    assert.match(p.get(path) ?? '', /DNS-1123 label/, `${path}: ${JSON.stringify([...p])}`);
});

test('issue 9: proxy config refuses a duplicate service and two upstreams for one service', async () => {
  const p = await problems(() =>
    parseProxyConfig({
      proxy: {
        service: 'web',
        upstreams: [
          { service: 'api', localPort: 7001 },
          { service: 'api', localPort: 7002 },
          { service: 'db', localPort: 7001 },
        ],
      },
      services: [svc('api'), svc('db'), svc('api'), svc('api', 'other')],
    }),
  );
  assert.equal(p.size, 3, JSON.stringify([...p]));
  assert.match(p.get('services[2].name')!, /default\/api is also services\[0\]/);
  assert.match(
    p.get('proxy.upstreams[1].service')!,
    /api already has a local port \(proxy\.upstreams\[0\]\)/,
  );
  assert.match(p.get('proxy.upstreams[2].localPort')!, /127\.0\.0\.1:7001 is also proxy\.upstreams\[0\]/);
  // The same name in another namespace is another service; port 0 never clashes.
  parseProxyConfig({
    proxy: {
      service: 'web',
      upstreams: [
        { service: 'api', localPort: 0 },
        { service: 'db', localPort: 0 },
      ],
    },
    services: [svc('api'), svc('api', 'other')],
  });
});

test('issue 9: mesh file refuses upper-case names, duplicate resources and two services on one fixed port', async () => {
  const policy = (retries: number) => ({
    apiVersion: 'hexmesh.io/v1alpha1',
    kind: 'TrafficPolicy',
    metadata: { name: 'p' },
    spec: { targetRef: { name: 'web' }, retries: { attempts: retries } },
  });
  const p = await problems(() =>
    parseMeshFile(
      {
        services: [
          { name: 'Web', command: 'node' },
          { name: 'api', command: 'node', port: 8080 },
          { name: 'db', command: 'node', port: 8080 },
          { name: 'api', command: 'node' },
        ],
        resources: [policy(1), policy(2)],
      },
      '/nonexistent/mesh.yaml',
    ),
  );
  assert.match(p.get('services[0].name')!, /DNS label/);
  assert.match(p.get('services[2].port')!, /port 8080 is also services\[1\]\.port/);
  assert.match(p.get('services[3].name')!, /api is also services\[1\]/);
  assert.match(p.get('resources[1].metadata.name')!, /TrafficPolicy default\/p is also resources\[0\]/);
});

test('issue 9: mesh file refuses two entries whose instances would get one id', async () => {
  const p = await problems(() =>
    parseMeshFile(
      {
        services: [
          { name: 'web', command: 'node', version: 'a' },
          { name: 'web', command: 'node', version: 'b' },
          { name: 'web-a', command: 'node' },
          { name: 'db', namespace: 'one', command: 'node' },
          { name: 'db', namespace: 'two', command: 'node' },
        ],
      },
      '/nonexistent/mesh.yaml',
    ),
  );
  assert.equal(p.size, 2, JSON.stringify([...p]));
  assert.match(p.get('services[2].name')!, /instance id web-a-1 is also one of services\[0\]'s/);
  assert.match(p.get('services[4].name')!, /instance id db-1 is also one of services\[3\]'s/);
  // A name repeated with versions is a canary, and fine.
  await parseMeshFile(
    {
      services: [
        { name: 'web', command: 'node', version: 'a' },
        { name: 'web', command: 'node', version: 'b', replicas: 2 },
      ],
    },
    '/nonexistent/mesh.yaml',
  );
});
