/**
 * The control client's pieces: reconnect backoff bounds (property), and a sidecar running
 * its app's HTTP check and reporting status changes into the catalog over the stream.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { backoffDelay } from '../../src/proxy/control-client/backoff.ts';
import {
  startControlledProxy,
  type ControlledProxy,
} from '../../src/proxy/control-client/controlled-proxy.ts';
import { KEYS } from '../../src/store/store.ts';
import { startHarness, until, type Harness } from '../control/discovery-support.ts';
import { startHttpServer } from '../support/mesh.ts';

describe('backoff', () => {
  it('stays within [base/2, base] with base doubling from initial to max', () => {
    fc.assert(
      fc.property(fc.nat(60), fc.double({ min: 0, max: 0.999999, noNaN: true }), (attempt, r) => {
        const base = Math.min(10_000, 250 * 2 ** Math.min(attempt, 30));
        const d = backoffDelay(attempt, { initial: 250, max: 10_000 }, () => r);
        return d >= Math.floor(base / 2) && d <= base;
      }),
    );
    assert.ok(backoffDelay(0, {}, () => 0) >= 125);
  });
});

describe('app checks reported by the sidecar', () => {
  let h: Harness;
  let app: Awaited<ReturnType<typeof startHttpServer>>;
  let p: ControlledProxy;
  let healthy = false;

  before(async () => {
    h = await startHarness();
    app = await startHttpServer((req, res) => {
      if (req.url === '/health') res.writeHead(healthy ? 200 : 500);
      res.end('ok');
    });
    const any = { address: '127.0.0.1', port: 0 };
    p = await startControlledProxy({
      control: [h.url],
      settings: { service: 'checked', inbound: any, outbound: any, admin: any, app: { port: app.port } },
      id: 'checked-1',
      checks: [{ name: 'app', type: 'http', path: '/health', interval: 100 }],
      client: { log: () => {} },
    });
  });
  after(async () => {
    await p.close();
    await app.close();
    await h.close();
  });

  it('starts critical, turns passing when the app is healthy, and critical again when it fails', async () => {
    const key = KEYS.instance('default', 'checked', 'checked-1');
    const status = async () => {
      const kv = await h.store.get(key);
      return kv ? (JSON.parse(kv.value) as { status: string; output?: string }) : undefined;
    };
    await until(async () => (await status())?.status === 'critical', 3000, 'registered critical');
    healthy = true;
    await until(async () => (await status())?.status === 'passing', 3000, 'passing');
    healthy = false;
    const s = await until(
      async () => {
        const st = await status();
        return st?.status === 'critical' ? st : undefined;
      },
      3000,
      'critical again',
    );
    assert.match(s.output ?? '', /500/);
  });
});
