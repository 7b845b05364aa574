/**
 * Issue 9: opaque TCP is authorized on what a connection has, with Istio's reading of rules
 * that need HTTP: an ALLOW rule with HTTP-only fields never matches, a DENY rule drops them.
 */
import assert from 'node:assert/strict';
import test from 'node:test';
import { authorizationPolicySchema, type AuthorizationPolicy } from '../../config/resources.ts';
import type { AuthzAttributes } from './attributes.ts';
import { Authorizer } from './authorizer.ts';

function policy(action: string, rules: unknown[]): AuthorizationPolicy {
  return authorizationPolicySchema.parse({
    apiVersion: 'hexmesh.io/v1alpha1',
    kind: 'AuthorizationPolicy',
    metadata: { name: 'p', namespace: 'shop' },
    spec: { action, rules },
  });
}

const WEB = 'spiffe://td/ns/shop/sa/web';

function conn(over: Partial<AuthzAttributes> = {}): AuthzAttributes {
  return {
    method: '',
    path: '',
    host: '',
    port: 5432,
    headers: {},
    peer: WEB,
    peerNamespace: 'shop',
    sourceIp: '10.0.0.7',
    auth: undefined,
    ...over,
  };
}

const allowed = (p: AuthorizationPolicy, a = conn()) => new Authorizer([p]).decideConnection(a).allowed;

test('issue 9: L4 fields decide a connection as they decide a request', () => {
  const byPeer = policy('ALLOW', [{ from: [{ source: { principals: [WEB] } }] }]);
  assert.equal(allowed(byPeer), true);
  assert.equal(allowed(byPeer, conn({ peer: 'spiffe://td/ns/shop/sa/other' })), false);
  assert.equal(allowed(byPeer, conn({ peer: '', peerNamespace: '' })), false);
  const denyNet = policy('DENY', [{ from: [{ source: { ipBlocks: ['10.0.0.0/8'] } }] }]);
  assert.equal(allowed(denyNet), false);
  assert.equal(allowed(denyNet, conn({ sourceIp: '192.168.1.1' })), true);
  const denyPort = policy('DENY', [{ to: [{ operation: { ports: [5432] } }] }]);
  assert.equal(allowed(denyPort), false);
  assert.equal(allowed(denyPort, conn({ port: 6379 })), true);
  const when = policy('ALLOW', [{ when: [{ key: 'source.namespace', values: ['shop'] }] }]);
  assert.equal(allowed(when), true);
  assert.equal(allowed(when, conn({ peerNamespace: 'ops' })), false);
});

test('issue 9: an ALLOW rule with HTTP-only fields never matches a connection; other rules still do', () => {
  for (const rule of [
    { to: [{ operation: { methods: ['GET'] } }] },
    { to: [{ operation: { paths: ['/x'], ports: [5432] } }] },
    { to: [{ operation: { hosts: ['db'] } }] },
    { from: [{ source: { requestPrincipals: ['*'] } }] },
    { when: [{ key: 'request.headers[x-tenant]', values: ['a'] }] },
  ])
    assert.equal(allowed(policy('ALLOW', [rule])), false, JSON.stringify(rule));
  const mixed = policy('ALLOW', [
    { to: [{ operation: { methods: ['GET'] } }] },
    { from: [{ source: { namespaces: ['shop'] } }] },
  ]);
  assert.equal(allowed(mixed), true);
});

test('issue 9: a DENY rule with HTTP-only fields is decided on its other fields (stricter)', () => {
  assert.equal(allowed(policy('DENY', [{ to: [{ operation: { paths: ['/admin'] } }] }])), false);
  const scoped = policy('DENY', [
    { from: [{ source: { ipBlocks: ['10.0.0.0/8'] } }], to: [{ operation: { methods: ['POST'] } }] },
  ]);
  assert.equal(allowed(scoped), false);
  assert.equal(allowed(scoped, conn({ sourceIp: '192.168.1.1' })), true);
  // The HTTP decision is unchanged by all this.
  const http = new Authorizer([policy('DENY', [{ to: [{ operation: { paths: ['/admin'] } }] }])]);
  assert.equal(http.decide(conn({ method: 'GET', path: '/public' })).allowed, true);
});
