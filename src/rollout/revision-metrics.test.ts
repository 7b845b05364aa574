import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { MAX_UNMEASURED_INTERVALS, unmeasuredVerdict } from './analysis.ts';
import { RevisionMetrics } from './revision-metrics.ts';

/** A sidecar's admin `/metrics` stand-in on a real socket: inbound counters we set, or a hang. */
class AdminEndpoint {
  requests = 0;
  failures = 0;
  /** Answer nothing (a scrape then times out, as on a stalled host). */
  silent = false;
  readonly #server = http.createServer((req, res) => {
    if (this.silent) return; // left open: the scraper's timeout ends it
    const ok = this.requests - this.failures;
    res.setHeader('content-type', 'text/plain; version=0.0.4');
    res.end(
      [
        `hexmesh_requests_total{direction="inbound",status_code="200"} ${ok}`,
        `hexmesh_requests_total{direction="inbound",status_code="503"} ${this.failures}`,
        `hexmesh_requests_total{direction="outbound",status_code="200"} 999`,
        `hexmesh_request_duration_seconds_bucket{direction="inbound",le="0.01"} ${this.requests}`,
        `hexmesh_request_duration_seconds_bucket{direction="inbound",le="+Inf"} ${this.requests}`,
        '',
      ].join('\n'),
    );
  });
  address = '';
  async start(): Promise<this> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', r));
    this.address = `127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this;
  }
  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise((r) => this.#server.close(r));
  }
}

describe('revision metrics', () => {
  const endpoints: AdminEndpoint[] = [];
  const admin = async () => {
    const e = await new AdminEndpoint().start();
    endpoints.push(e);
    return e;
  };
  after(() => Promise.all(endpoints.map((e) => e.close())));

  it("counts the revision's inbound requests between baseline and measure, per sidecar", async () => {
    const [a, b] = [await admin(), await admin()];
    a.requests = 10;
    b.requests = 5;
    const m = new RevisionMetrics();
    await m.baseline([a.address, b.address]);
    a.requests = 30;
    a.failures = 2;
    b.requests = 25;
    const r = await m.measure([a.address, b.address]);
    assert.deepEqual(r.unreachable, []);
    assert.equal(r.requests, 40);
    assert.equal(r.successRate, 95);
  });

  it('a sidecar unreadable at either end of the interval is reported, not counted as no traffic', async () => {
    const [a, b] = [await admin(), await admin()];
    const m = new RevisionMetrics();
    // The baseline scrape of b stalls (timed out): without a baseline its interval is unknown.
    b.silent = true;
    await m.baseline([a.address, b.address]);
    b.silent = false;
    a.requests = 10;
    b.requests = 10;
    let r = await m.measure([a.address, b.address]);
    assert.deepEqual(r.unreachable, [b.address]);
    assert.equal(r.requests, 10, "a's traffic is still counted");
    // Read at both ends now: measured again as usual.
    await m.baseline([a.address, b.address]);
    b.requests = 15;
    r = await m.measure([a.address, b.address]);
    assert.deepEqual(r.unreachable, []);
    assert.equal(r.requests, 5);
    // Gone at the end of the interval: reported too.
    await m.baseline([b.address]);
    await b.close();
    endpoints.splice(endpoints.indexOf(b), 1);
    r = await m.measure([b.address]);
    assert.deepEqual(r.unreachable, [b.address]);
    assert.equal(r.requests, 0);
  });

  it('an unreadable interval is measured again, and fails the analysis only after the limit in a row', () => {
    const m = { requests: 0, successRate: null, p99Ms: null, unreachable: ['127.0.0.1:4191'] };
    for (let n = 1; n < MAX_UNMEASURED_INTERVALS; n++) assert.equal(unmeasuredVerdict(m, n), undefined);
    assert.match(
      unmeasuredVerdict(m, MAX_UNMEASURED_INTERVALS)!,
      /metrics could not be read in 4 intervals in a row \(admin 127\.0\.0\.1:4191\)/,
    );
  });
});
