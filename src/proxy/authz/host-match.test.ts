/**
 * Issue 9: authorization reads `hosts` with routing's normalisation (route/authority.ts), so
 * every spelling that reaches a service matches a rule naming it: a DENY on `orders` cannot
 * be stepped around with `orders.`, `Orders.SHOP.`, `orders:80` or the full cluster name.
 */
import assert from 'node:assert/strict';
import test from 'node:test';
import { authorizationPolicySchema, type AuthorizationPolicy } from '../../config/resources.ts';
import { normalizeHost, parseAuthority } from '../route/authority.ts';
import type { AuthzAttributes } from './attributes.ts';
import { Authorizer } from './authorizer.ts';

function policy(action: string, operation: Record<string, unknown>, namespace = 'shop'): AuthorizationPolicy {
  return authorizationPolicySchema.parse({
    apiVersion: 'hexmesh.io/v1alpha1',
    kind: 'AuthorizationPolicy',
    metadata: { name: 'p', namespace },
    spec: { action, rules: [{ to: [{ operation }] }] },
  });
}

function attrs(host: string): AuthzAttributes {
  return {
    method: 'GET',
    path: '/',
    host: host.toLowerCase(),
    port: 8080,
    headers: {},
    peer: '',
    peerNamespace: '',
    sourceIp: '127.0.0.1',
    auth: undefined,
  };
}

const SPELLINGS = [
  'orders',
  'orders.',
  'Orders',
  'ORDERS.SHOP.',
  'Orders.Shop',
  'orders:80',
  'orders.:80',
  'orders.shop.svc',
  'orders.shop.svc.cluster.local',
  'orders.shop.svc.cluster.local.',
  'Orders.Shop.Svc.Cluster.Local.:8080',
];

test('issue 9: routing and authorization read every spelling of a service as the same service', () => {
  for (const a of SPELLINGS) {
    const route = parseAuthority(a.replace(/\.(:|$)/, '$1'), 'shop');
    assert.equal(route?.name, 'orders', a);
    assert.equal(route?.namespace, 'shop', a);
    assert.equal(normalizeHost(a, 'shop').fqdn, 'orders.shop.svc.cluster.local', a);
  }
  assert.deepEqual(normalizeHost('Orders.Shop.:8080', 'x'), {
    host: 'orders.shop',
    port: 8080,
    fqdn: 'orders.shop.svc.cluster.local',
  });
  assert.deepEqual(normalizeHost('[::1]:80', 'x'), { host: '[::1]', port: 80, fqdn: '[::1]' });
  assert.deepEqual(normalizeHost('API.Example.COM.', 'x'), {
    host: 'api.example.com',
    port: undefined,
    fqdn: 'api.example.com',
  });
  // Another namespace is another service.
  assert.equal(normalizeHost('orders.other', 'shop').fqdn, 'orders.other.svc.cluster.local');
});

test('issue 9: a DENY on hosts [orders] denies every spelling; notHosts and ALLOW read the same way', () => {
  for (const pattern of ['orders', 'orders.shop', 'ORDERS.shop.svc.cluster.local.']) {
    const deny = new Authorizer([policy('DENY', { hosts: [pattern] })], undefined, 'shop');
    for (const a of SPELLINGS) assert.equal(deny.decide(attrs(a)).allowed, false, `${pattern} vs ${a}`);
    assert.equal(deny.decide(attrs('orders.other')).allowed, true);
    assert.equal(deny.decide(attrs('payments')).allowed, true);
    const allow = new Authorizer([policy('ALLOW', { hosts: [pattern] })], undefined, 'shop');
    for (const a of SPELLINGS) assert.equal(allow.decide(attrs(a)).allowed, true, `${pattern} vs ${a}`);
    assert.equal(allow.decide(attrs('payments')).allowed, false);
    const notHosts = new Authorizer([policy('DENY', { notHosts: [pattern] })], undefined, 'shop');
    for (const a of SPELLINGS) assert.equal(notHosts.decide(attrs(a)).allowed, true, `${pattern} vs ${a}`);
  }
  // A port in the entry must match; wildcards see the host and the full name.
  const port = new Authorizer([policy('DENY', { hosts: ['orders:8080'] })], undefined, 'shop');
  assert.equal(port.decide(attrs('orders.shop.:8080')).allowed, false);
  assert.equal(port.decide(attrs('orders:9090')).allowed, true);
  const wild = new Authorizer([policy('DENY', { hosts: ['*.shop.svc.cluster.local'] })], undefined, 'shop');
  assert.equal(wild.decide(attrs('Orders.')).allowed, false);
  const ext = new Authorizer([policy('DENY', { hosts: ['*.example.com'] })], undefined, 'shop');
  assert.equal(ext.decide(attrs('API.example.com.:443')).allowed, false);
  // A mesh-wide policy reads a bare name in the workload's namespace.
  const root = new Authorizer([policy('DENY', { hosts: ['orders'] }, 'hexmesh-system')], undefined, 'shop');
  assert.equal(root.decide(attrs('orders.shop')).allowed, false);
});
