/**
 * Issue 15: `hexmesh tap`'s text output has a header and named columns — DIRECTION and GRPC
 * among them, SOURCE/DESTINATION as `top` names them — and `-o wide` adds AUTHORITY, ROUTE,
 * IDENTITY and ENDPOINT. Real CLI processes against a real control plane's tap fan-in from
 * real controlled sidecars (client → ratings).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Running } from './control-support.ts';
import { startViewsMesh } from './mesh-views-support.ts';

/** Wait for the tap's `# tapping …` note (its stream is open), then send `send()` until it exits. */
async function tapWhile(tap: Running, send: () => Promise<unknown>): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!tap.stderr.includes('# tapping')) {
    if (tap.child.exitCode !== null || Date.now() > deadline)
      throw new Error(`tap never started: ${tap.stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  // The fan-in attaches to each proxy's admin stream just after the start line.
  while (tap.child.exitCode === null && tap.child.signalCode === null) {
    if (Date.now() > deadline) throw new Error(`tap never ended: ${tap.stdout}\n${tap.stderr}`);
    await send();
    await new Promise((r) => setTimeout(r, 100));
  }
}

test(
  'issue 15: hexmesh tap prints named columns with direction and gRPC status; -o wide adds more',
  { timeout: 120_000 },
  async (t) => {
    const m = await startViewsMesh();
    t.after(() => m.close());
    const env = { HEXMESH_CONTROL: m.cp.url };

    // The server side (ratings' sidecars): inbound, a gRPC UNAVAILABLE carried in a 200.
    const inbound = new Running(['tap', 'ratings', '--path', '/cols/grpc-unavailable', '--limit', '1'], env);
    t.after(() => inbound.child.kill());
    await tapWhile(inbound, () => m.call('/cols/grpc-unavailable'));
    const [head, row] = inbound.stdout.trimEnd().split('\n');
    assert.match(
      head,
      /^TIME\s+DIRECTION\s+SOURCE\s+DESTINATION\s+METHOD\s+PATH\s+STATUS\s+GRPC\s+LATENCY\s+TLS\s+ERROR\s+PROXY$/,
    );
    assert.match(
      row,
      /^\d\d:\d\d:\d\d\.\d{3}\s+inbound\s+client\s+ratings\s+GET\s+\/cols\/grpc-unavailable\s+200\s+14 UNAVAILABLE\s+[\d.]+m?s\s+(yes|no)\s+-\s+ratings-[12]$/,
    );
    // Columns start where their headers do (until a value wider than its column pushes the rest).
    for (const col of ['DIRECTION', 'SOURCE', 'DESTINATION', 'METHOD', 'PATH'])
      assert.ok(/\S/.test(row[head.indexOf(col)]) && row[head.indexOf(col) - 1] === ' ', `${col} aligned`);

    // The client side with -o wide: outbound, no gRPC status (plain HTTP), the extra columns.
    const outbound = new Running(
      ['tap', 'client', '--path', '/cols/plain', '--limit', '1', '-o', 'wide'],
      env,
    );
    t.after(() => outbound.child.kill());
    await tapWhile(outbound, () => m.call('/cols/plain'));
    const [wideHead, wideRow] = outbound.stdout.trimEnd().split('\n');
    assert.match(
      wideHead,
      /^TIME\s+DIRECTION\s+SOURCE\s+DESTINATION\s+METHOD\s+AUTHORITY\s+PATH\s+ROUTE\s+STATUS\s+GRPC\s+LATENCY\s+TLS\s+IDENTITY\s+ENDPOINT\s+ERROR\s+PROXY$/,
    );
    assert.match(
      wideRow,
      /^\S+\s+outbound\s+client\s+ratings\s+GET\s+ratings\s+\/cols\/plain\s+\S+\s+200\s+-\s+\S+\s+(yes|no)\s+\S+\s+127\.0\.0\.1:\d+\s+-\s+client-1$/,
    );
  },
);
