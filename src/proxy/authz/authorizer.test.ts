import assert from 'node:assert/strict';
import test from 'node:test';
import { authorizationPolicySchema, type AuthorizationPolicy } from '../../config/resources.ts';
import type { AuthzAttributes } from './attributes.ts';
import { Authorizer } from './authorizer.ts';
import { appliesTo } from './workload-selector.ts';

function policy(name: string, spec: Record<string, unknown>, namespace = 'shop'): AuthorizationPolicy {
  return authorizationPolicySchema.parse({
    apiVersion: 'hexmesh.io/v1alpha1',
    kind: 'AuthorizationPolicy',
    metadata: { name, namespace },
    spec,
  });
}

function attrs(over: Partial<AuthzAttributes> = {}): AuthzAttributes {
  return {
    method: 'GET',
    path: '/',
    host: 'orders.shop:80',
    port: 8080,
    headers: {},
    peer: 'spiffe://td/ns/shop/sa/web',
    peerNamespace: 'shop',
    sourceIp: '127.0.0.1',
    auth: undefined,
    ...over,
  };
}

const WEB = 'spiffe://td/ns/shop/sa/web';
const ADMIN = 'spiffe://td/ns/ops/sa/admin';

/** [case, policies, request, expected: 'allow' | 'deny:<policy>' | 'deny'] */
const TABLE: [string, AuthorizationPolicy[], Partial<AuthzAttributes>, string][] = [
  ['no policy allows', [], {}, 'allow'],
  [
    'DENY path prefix',
    [policy('deny-admin', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] })],
    { path: '/admin/users' },
    'deny:shop/deny-admin',
  ],
  [
    'DENY path prefix is case-sensitive',
    [policy('deny-admin', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] })],
    { path: '/ADMIN' },
    'allow',
  ],
  [
    'DENY suffix pattern',
    [policy('no-png', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['*.png'] } }] }] })],
    { path: '/img/a.png' },
    'deny:shop/no-png',
  ],
  [
    'DENY exact does not match a longer path',
    [policy('d', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin'] } }] }] })],
    { path: '/admin/' },
    'allow',
  ],
  ['DENY with no rules matches nothing', [policy('d', { action: 'DENY' })], {}, 'allow'],
  ['ALLOW with no rules denies all', [policy('a', { action: 'ALLOW' })], {}, 'deny'],
  ['ALLOW with an empty rule allows all', [policy('a', { action: 'ALLOW', rules: [{}] })], {}, 'allow'],
  [
    'ALLOW GET only: POST denied',
    [policy('a', { rules: [{ to: [{ operation: { methods: ['GET'] } }] }] })],
    { method: 'POST' },
    'deny',
  ],
  [
    'ALLOW principal glob',
    [policy('a', { rules: [{ from: [{ source: { principals: ['spiffe://td/ns/shop/sa/*'] } }] }] })],
    { peer: WEB },
    'allow',
  ],
  [
    'ALLOW principal glob: other namespace denied',
    [policy('a', { rules: [{ from: [{ source: { principals: ['spiffe://td/ns/shop/sa/*'] } }] }] })],
    { peer: ADMIN, peerNamespace: 'ops' },
    'deny',
  ],
  [
    'principal without scheme (Istio style)',
    [policy('a', { rules: [{ from: [{ source: { principals: ['td/ns/shop/sa/web'] } }] }] })],
    { peer: WEB },
    'allow',
  ],
  [
    'principals * needs an identity',
    [policy('a', { rules: [{ from: [{ source: { principals: ['*'] } }] }] })],
    { peer: '', peerNamespace: '' },
    'deny',
  ],
  [
    'principals unauthenticated matches plaintext',
    [policy('a', { rules: [{ from: [{ source: { principals: ['unauthenticated'] } }] }] })],
    { peer: '', peerNamespace: '' },
    'allow',
  ],
  [
    'DENY notPrincipals * denies plaintext',
    [policy('d', { action: 'DENY', rules: [{ from: [{ source: { notPrincipals: ['*'] } }] }] })],
    { peer: '', peerNamespace: '' },
    'deny:shop/d',
  ],
  [
    'DENY notPrincipals * lets an identity through',
    [policy('d', { action: 'DENY', rules: [{ from: [{ source: { notPrincipals: ['*'] } }] }] })],
    {},
    'allow',
  ],
  [
    'namespaces',
    [policy('a', { rules: [{ from: [{ source: { namespaces: ['ops'] } }] }] })],
    { peer: ADMIN, peerNamespace: 'ops' },
    'allow',
  ],
  [
    'notNamespaces',
    [policy('a', { rules: [{ from: [{ source: { notNamespaces: ['ops'] } }] }] })],
    { peer: ADMIN, peerNamespace: 'ops' },
    'deny',
  ],
  [
    'ipBlocks v4 with a mapped v6 peer',
    [policy('a', { rules: [{ from: [{ source: { ipBlocks: ['10.1.0.0/16'] } }] }] })],
    { sourceIp: '::ffff:10.1.2.3' },
    'allow',
  ],
  [
    'notIpBlocks',
    [policy('a', { rules: [{ from: [{ source: { notIpBlocks: ['127.0.0.0/8'] } }] }] })],
    {},
    'deny',
  ],
  [
    'ports and hosts',
    [policy('a', { rules: [{ to: [{ operation: { ports: ['8080'], hosts: ['ORDERS.shop'] } }] }] })],
    {},
    'allow',
  ],
  ['ports mismatch', [policy('a', { rules: [{ to: [{ operation: { ports: [9090] } }] }] })], {}, 'deny'],
  [
    'when header value',
    [policy('a', { rules: [{ when: [{ key: 'request.headers[X-Tenant]', values: ['acme*'] }] }] })],
    { headers: { 'x-tenant': 'acme-eu' } },
    'allow',
  ],
  [
    'when header missing',
    [policy('a', { rules: [{ when: [{ key: 'request.headers[x-tenant]', values: ['*'] }] }] })],
    {},
    'deny',
  ],
  [
    'when notValues',
    [policy('a', { rules: [{ when: [{ key: 'request.headers[x-env]', notValues: ['prod'] }] }] })],
    { headers: { 'x-env': 'prod' } },
    'deny',
  ],
  [
    'when claim in an array',
    [policy('a', { rules: [{ when: [{ key: 'request.auth.claims[groups]', values: ['admins'] }] }] })],
    { auth: { principal: 'iss/u', claims: { groups: ['dev', 'admins'] } } },
    'allow',
  ],
  [
    'when nested claim',
    [policy('a', { rules: [{ when: [{ key: 'request.auth.claims[org][tier]', values: ['gold'] }] }] })],
    { auth: { principal: 'iss/u', claims: { org: { tier: 'gold' } } } },
    'allow',
  ],
  [
    'requestPrincipals without a token',
    [policy('a', { rules: [{ from: [{ source: { requestPrincipals: ['*'] } }] }] })],
    {},
    'deny',
  ],
  [
    'requestPrincipals with a token',
    [policy('a', { rules: [{ from: [{ source: { requestPrincipals: ['https://issuer/*'] } }] }] })],
    { auth: { principal: 'https://issuer/alice', claims: {} } },
    'allow',
  ],
  [
    'DENY wins over ALLOW',
    [
      policy('allow-all', { rules: [{}] }),
      policy('deny-post', { action: 'DENY', rules: [{ to: [{ operation: { methods: ['POST'] } }] }] }),
    ],
    { method: 'POST' },
    'deny:shop/deny-post',
  ],
  ['AUDIT never changes the outcome', [policy('audit', { action: 'AUDIT', rules: [{}] })], {}, 'allow'],
  [
    'from ORed, fields ANDed',
    [
      policy('a', {
        rules: [
          {
            from: [
              { source: { namespaces: ['ops'] } },
              { source: { principals: [WEB], ipBlocks: ['10.0.0.0/8'] } },
            ],
          },
        ],
      }),
    ],
    { peer: WEB },
    'deny',
  ],
  [
    'source.ip condition',
    [policy('a', { rules: [{ when: [{ key: 'source.ip', values: ['127.0.0.1'] }] }] })],
    {},
    'allow',
  ],
  [
    'source.namespace condition',
    [policy('a', { rules: [{ when: [{ key: 'source.namespace', values: ['shop'] }] }] })],
    {},
    'allow',
  ],
];

test('Authorizer: policy matching table', () => {
  for (const [name, policies, over, want] of TABLE) {
    const v = new Authorizer(policies).decide(attrs(over));
    const got = v.allowed ? 'allow' : v.policy ? `deny:${v.policy}` : 'deny';
    assert.equal(got, want, name);
  }
});

test('Authorizer: decisions are counted on the series bound at config time', () => {
  const counts = new Map<string, number>();
  const counters = (p: string, a: string, d: string) => {
    const key = `${p}|${a}|${d}`;
    return { inc: () => counts.set(key, (counts.get(key) ?? 0) + 1) };
  };
  const az = new Authorizer(
    [
      policy('allow-get', { rules: [{ to: [{ operation: { methods: ['GET'] } }] }] }),
      policy('audit-all', { action: 'AUDIT', rules: [{}] }),
    ],
    counters,
  );
  az.decide(attrs()).counter.inc();
  az.decide(attrs({ method: 'PUT' })).counter.inc();
  assert.deepEqual(Object.fromEntries(counts), {
    'shop/allow-get|ALLOW|allowed': 1,
    'none|ALLOW|denied': 1,
    'shop/audit-all|AUDIT|audited': 2,
  });
});

test('appliesTo: namespace, targetRef and the root namespace', () => {
  const ns = policy('x', { rules: [{}] });
  const targeted = policy('y', { targetRef: { name: 'orders' }, rules: [{}] });
  const root = policy('z', { rules: [{}] }, 'hexmesh-system');
  assert.equal(appliesTo(ns, 'orders', 'shop'), true);
  assert.equal(appliesTo(ns, 'orders', 'other'), false);
  assert.equal(appliesTo(targeted, 'orders', 'shop'), true);
  assert.equal(appliesTo(targeted, 'payments', 'shop'), false);
  assert.equal(appliesTo(root, 'anything', 'anywhere'), true);
});
