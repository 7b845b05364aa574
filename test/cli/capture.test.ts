/** `hexmesh capture` as a user runs it: --dry-run prints the rules, bad values exit 3 by name. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runCli } from '../support/cli.ts';

test('hexmesh capture --dry-run prints the iptables-restore input with the exclusions', async () => {
  const r = await runCli([
    'capture',
    '--dry-run',
    '--proxy-uid',
    '1337',
    '--exclude-inbound-ports',
    '15021,9901',
    '--exclude-outbound-cidrs',
    '169.254.169.254/32',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split('\n');
  for (const l of [
    '*nat',
    ':HEXMESH_OUTPUT - [0:0]',
    '-A HEXMESH_INBOUND -p tcp --dport 15021 -j RETURN',
    '-A HEXMESH_INBOUND -p tcp --dport 9901 -j RETURN',
    '-A HEXMESH_OUTPUT -m owner --uid-owner 1337 -j RETURN',
    '-A HEXMESH_OUTPUT -d 169.254.169.254/32 -j RETURN',
    '-A PREROUTING -p tcp -j HEXMESH_INBOUND',
    '-A OUTPUT -p tcp -j HEXMESH_OUTPUT',
    'COMMIT',
  ])
    assert.ok(lines.includes(l), `missing ${l}\n${r.stdout}`);
});

test('hexmesh capture refuses a bad value by name (exit 3) and applies nothing', async () => {
  const r = await runCli(['capture', '--inbound-port', '4143x']);
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, /--inbound-port: must be a number \(got "4143x"\)/);
  const cidr = await runCli(['capture', '--exclude-outbound-cidrs', '10.0.0.0/99']);
  assert.equal(cidr.code, 3, cidr.stderr);
  assert.match(cidr.stderr, /excludeOutboundCidrs\.0: must be an IPv4 or IPv6 CIDR/);
});
