import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../config/load.ts';
import { captureOptions, chainRules, removeScript, restoreScript } from './iptables-rules.ts';

const base = { proxyUid: 2102 };

describe('capture rules', () => {
  it('redirect inbound to the inbound listener and outbound to the outbound one, the proxy uid first', () => {
    const o = captureOptions({ ...base, proxyGid: 2102, excludeInboundPorts: [15021] });
    assert.deepEqual(chainRules(o, 4), [
      '-A HEXMESH_INBOUND -p tcp --dport 4143 -j RETURN',
      '-A HEXMESH_INBOUND -p tcp --dport 15021 -j RETURN',
      '-A HEXMESH_INBOUND -p tcp -j HEXMESH_IN_REDIRECT',
      '-A HEXMESH_IN_REDIRECT -p tcp -j REDIRECT --to-ports 4143',
      '-A HEXMESH_OUTPUT -m owner --uid-owner 2102 -j RETURN',
      '-A HEXMESH_OUTPUT -m owner --gid-owner 2102 -j RETURN',
      '-A HEXMESH_OUTPUT -o lo -j RETURN',
      '-A HEXMESH_OUTPUT -j HEXMESH_REDIRECT',
      '-A HEXMESH_REDIRECT -p tcp -j REDIRECT --to-ports 4140',
    ]);
  });

  it('exclusions: outbound ports, CIDRs of the family written, a list of inbound ports', () => {
    const o = captureOptions({
      ...base,
      inboundPorts: [8080, 9090],
      excludeOutboundPorts: [5432],
      excludeOutboundCidrs: ['169.254.169.254/32', 'fd00::/8', '10.0.0.1'],
    });
    const v4 = chainRules(o, 4);
    assert.ok(v4.includes('-A HEXMESH_INBOUND -p tcp --dport 8080 -j HEXMESH_IN_REDIRECT'));
    assert.ok(!v4.includes('-A HEXMESH_INBOUND -p tcp -j HEXMESH_IN_REDIRECT'));
    assert.ok(v4.includes('-A HEXMESH_OUTPUT -p tcp --dport 5432 -j RETURN'));
    assert.ok(v4.includes('-A HEXMESH_OUTPUT -d 169.254.169.254/32 -j RETURN'));
    assert.ok(v4.includes('-A HEXMESH_OUTPUT -d 10.0.0.1 -j RETURN'));
    assert.ok(!v4.some((r) => r.includes('fd00::/8')));
    const v6 = chainRules(o, 6);
    assert.ok(v6.includes('-A HEXMESH_OUTPUT -d fd00::/8 -j RETURN'));
    assert.ok(!v6.some((r) => r.includes('169.254')));
    // Every exclusion comes before the final jump to the redirect.
    const output = v4.filter((r) => r.startsWith('-A HEXMESH_OUTPUT'));
    assert.equal(output.at(-1), '-A HEXMESH_OUTPUT -j HEXMESH_REDIRECT');
  });

  it('restoreScript declares (so flushes) the chains and adds only the jumps not already there', () => {
    const o = captureOptions(base);
    const fresh = restoreScript(o, 4);
    assert.match(fresh, /^\*nat\n:HEXMESH_INBOUND - \[0:0\]\n/);
    assert.match(fresh, /^-A PREROUTING -p tcp -j HEXMESH_INBOUND$/m);
    assert.match(fresh, /^-A OUTPUT -p tcp -j HEXMESH_OUTPUT$/m);
    assert.match(fresh, /COMMIT\n$/);
    const saved =
      '*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp -j HEXMESH_INBOUND\n-A OUTPUT -p tcp -j HEXMESH_OUTPUT\nCOMMIT\n';
    const again = restoreScript(o, 4, saved);
    assert.doesNotMatch(again, /^-A PREROUTING/m);
    assert.doesNotMatch(again, /^-A OUTPUT /m);
  });

  it('removeScript deletes every copy of the jumps, then the chains present', () => {
    const saved = [
      ':HEXMESH_INBOUND - [0:0]',
      ':HEXMESH_OUTPUT - [5:300]',
      '-A PREROUTING -p tcp -j HEXMESH_INBOUND',
      '-A PREROUTING -p tcp -j HEXMESH_INBOUND',
      '-A OUTPUT -p tcp -j HEXMESH_OUTPUT',
    ].join('\n');
    assert.equal(
      removeScript(saved),
      [
        '*nat',
        '-D PREROUTING -p tcp -j HEXMESH_INBOUND',
        '-D PREROUTING -p tcp -j HEXMESH_INBOUND',
        '-D OUTPUT -p tcp -j HEXMESH_OUTPUT',
        '-F HEXMESH_INBOUND',
        '-F HEXMESH_OUTPUT',
        '-X HEXMESH_INBOUND',
        '-X HEXMESH_OUTPUT',
        'COMMIT',
        '',
      ].join('\n'),
    );
    assert.equal(removeScript(''), '*nat\nCOMMIT\n');
  });

  it('invalid options are refused by name', () => {
    assert.throws(
      () =>
        captureOptions({
          ...base,
          outboundPort: 70000,
          excludeOutboundCidrs: ['10.0.0.0/33', 'x; rm -rf /'],
        }),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.problems.some((p) => p.path === 'outboundPort') &&
        e.problems.some((p) => p.path === 'excludeOutboundCidrs.0') &&
        e.problems.some((p) => p.path === 'excludeOutboundCidrs.1'),
    );
    assert.throws(() => captureOptions({}), ConfigError);
  });
});
