/**
 * `hexmesh install --systemd`: the rendered units carry the node's flags (checked by the real
 * control/proxy parsers), the hardening the units promise, a 0700 state directory and a
 * dedicated user; `systemd-analyze verify` accepts them (and `security --offline` scores
 * them) where systemd-analyze is installed; secrets never land on a command line.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli } from '../support/cli.ts';
import { execWord, fillTemplate } from '../../src/deploy/systemd.ts';

const HARDENING = [
  'User=hexmesh',
  'NoNewPrivileges=yes',
  'ProtectSystem=strict',
  'ProtectHome=yes',
  'PrivateTmp=yes',
  'PrivateDevices=yes',
  'ProtectKernelTunables=yes',
  'ProtectKernelModules=yes',
  'ProtectControlGroups=yes',
  'RestrictSUIDSGID=yes',
  'SystemCallFilter=@system-service',
  'StateDirectoryMode=0700',
  'UMask=0077',
];

const analyze = spawnSync('systemd-analyze', ['--version']).status === 0;

/** The value of every `Key=` line of a unit. */
function directives(unit: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of unit.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m) out.set(m[1], [...(out.get(m[1]) ?? []), m[2]]);
  }
  return out;
}

function checkUnit(path: string): void {
  const unit = readFileSync(path, 'utf8');
  assert.doesNotMatch(unit, /\{\{/, `${path}: placeholder left`);
  for (const line of HARDENING) assert.ok(unit.split('\n').includes(line), `${path}: no ${line}`);
  const d = directives(unit);
  assert.match(
    d.get('ExecStart')![0],
    /^\/\S+ \/\S+\/bin\/hexmesh\.js /,
    'ExecStart runs node and the bin by absolute path',
  );
  assert.match(d.get('StateDirectory')![0], /^hexmesh\//);
  for (const section of ['[Unit]', '[Service]', '[Install]'])
    assert.ok(unit.includes(section), `${path}: no ${section}`);
  if (analyze) {
    const v = spawnSync('systemd-analyze', ['verify', path], { encoding: 'utf8' });
    assert.equal(v.status, 0, `systemd-analyze verify ${path}:\n${v.stderr}`);
    const s = spawnSync('systemd-analyze', ['security', '--offline=yes', '--threshold=30', path], {
      encoding: 'utf8',
    });
    // --offline needs systemd >= 250; older ones refuse the flag (exit 1 with a usage message).
    if (!/unrecognized option|unknown option/i.test(s.stderr))
      assert.equal(s.status, 0, `systemd-analyze security: exposure above 3.0\n${s.stdout}`);
  }
}

test('install --systemd control renders a hardened unit running hexmesh control with the given flags', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'hexmesh-units-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const flags = [
    '--listen',
    '0.0.0.0:7070',
    '--store',
    'etcd://10.0.0.1:2379,10.0.0.2:2379',
    '--tls',
    '--advertise',
    'cp.example.com,10.0.0.1',
  ];
  const r = await runCli(['install', '--systemd', 'control', '--root', root, '--', ...flags]);
  assert.equal(r.code, 0, r.stderr);
  const path = join(root, 'etc/systemd/system/hexmesh-control.service');
  checkUnit(path);
  const d = directives(readFileSync(path, 'utf8'));
  assert.match(
    d.get('ExecStart')![0],
    / control --listen 0\.0\.0\.0:7070 --store etcd:\/\/10\.0\.0\.1:2379,10\.0\.0\.2:2379 --tls --advertise cp\.example\.com,10\.0\.0\.1 --data-dir \/var\/lib\/hexmesh\/control$/,
  );
  assert.deepEqual(d.get('StateDirectory'), ['hexmesh/control']);
  assert.deepEqual(d.get('CapabilityBoundingSet'), ['']);
  assert.match(readFileSync(join(root, 'etc/sysusers.d/hexmesh.conf'), 'utf8'), /^u hexmesh - /m);
  assert.match(r.stdout, /systemctl enable --now hexmesh-control\.service/);
});

test('install --systemd sidecar renders the sidecar unit and a root-only env file with the join token', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'hexmesh-units-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const flags = [
    '--control',
    'https://10.0.0.1:7070,https://10.0.0.2:7070',
    '--service',
    'web',
    '--namespace',
    'shop',
    '--app-port',
    '8080',
    '--advertise',
    '10.0.0.3',
    '--inbound',
    '0.0.0.0:443',
    '--label',
    'team=store front',
    '--control-ca',
    '/etc/hexmesh/ca-bundle.pem',
  ];
  const r = await runCli([
    'install',
    '--systemd',
    'sidecar',
    '--root',
    root,
    '--app-unit',
    'web.service',
    '--join-token',
    'hxjt.abc.def',
    '--',
    ...flags,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const path = join(root, 'etc/systemd/system/hexmesh-sidecar-web.service');
  checkUnit(path);
  const unit = readFileSync(path, 'utf8');
  const d = directives(unit);
  assert.ok(
    d
      .get('ExecStart')![0]
      .endsWith(
        ' proxy --control https://10.0.0.1:7070,https://10.0.0.2:7070 --service web --namespace shop --app-port 8080 --advertise 10.0.0.3 --inbound 0.0.0.0:443 --label "team=store front" --control-ca /etc/hexmesh/ca-bundle.pem',
      ),
    d.get('ExecStart')![0],
  );
  assert.doesNotMatch(unit, /hxjt\.abc/, 'the join token is not in the unit');
  assert.deepEqual(d.get('After'), ['network-online.target web.service']);
  // Port 443 below 1024: the one capability that allows binding it, nothing else.
  assert.deepEqual(d.get('CapabilityBoundingSet'), ['CAP_NET_BIND_SERVICE']);
  const env = join(root, 'etc/hexmesh/sidecar-web.env');
  assert.equal(readFileSync(env, 'utf8'), 'HEXMESH_JOIN_TOKEN=hxjt.abc.def\n');
  assert.equal(statSync(env).mode & 0o777, 0o600);
});

test('install refuses flags the command would refuse, a join token on the command line, and --data-dir', async () => {
  for (const args of [
    ['install', '--systemd', 'control', '--print', '--', '--listen', 'nope'],
    ['install', '--systemd', 'control', '--print', '--', '--no-such-flag'],
    ['install', '--systemd', 'control', '--print', '--', '--data-dir', '/tmp/x'],
    [
      'install',
      '--systemd',
      'sidecar',
      '--print',
      '--',
      '--control',
      'https://a:7070',
      '--service',
      'web',
      '--app-port',
      '1',
      '--join-token',
      'hxjt.a.b',
    ],
    ['install', '--systemd', 'sidecar', '--print', '--', '--service', 'web'],
    ['install', '--systemd', 'gateway', '--print'],
    ['install', 'control', '--print'],
  ]) {
    const r = await runCli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}\n${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /^error: /m);
  }
});

test('ExecStart words: quoted when needed, % and $ escaped so systemd passes them as written', () => {
  assert.equal(execWord('--listen'), '--listen');
  assert.equal(execWord('https://a:7070,https://b:7070'), 'https://a:7070,https://b:7070');
  assert.equal(execWord('team=store front'), '"team=store front"');
  assert.equal(execWord('100%'), '100%%');
  assert.equal(execWord('$HOME'), '"$$HOME"');
  assert.equal(execWord('say "hi"'), '"say \\"hi\\""');
  assert.throws(() => fillTemplate('x={{missing}}', {}), /no value for \{\{missing\}\}/);
  assert.throws(() => fillTemplate('x={{v}}', { v: 'a\nExecStartPre=/bin/sh' }), /one line/);
});
