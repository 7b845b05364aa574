/**
 * `hexmesh dashboard`'s token for the page (src/cli/commands/dashboard.ts `pageToken`),
 * against real control planes: none with auth off; admin credentials mint a short-lived
 * viewer token (the API says it is a viewer); other roles hand over their own; no
 * credentials under enforce: no token and a hint.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pageToken } from '../../src/cli/commands/dashboard.ts';
import { ControlClient } from '../../src/cli/client/control-client.ts';
import { call, startCp } from '../control/helpers.ts';

const OPTS = { role: 'viewer', ttl: '1h' };

test('pageToken: auth off, admin mints a viewer token, operator passes its own, none without credentials', async () => {
  const off = await startCp({ dashboard: false });
  const on = await startCp({ auth: { mode: 'enforce' }, identity: {}, dashboard: false });
  const clients: ControlClient[] = [];
  const client = (url: string, token?: string) => {
    const c = new ControlClient(url, { token });
    clients.push(c);
    return c;
  };
  try {
    const notes: string[] = [];
    const note = (l: string) => notes.push(l);
    assert.equal(await pageToken(client(off.url), undefined, OPTS, note), undefined);
    assert.deepEqual(notes, []);

    const admin = (await on.cp.tokens.create({ name: 'a', role: 'admin' })).token;
    const operator = (await on.cp.tokens.create({ name: 'o', role: 'operator' })).token;

    const minted = await pageToken(client(on.url, admin), admin, OPTS, note);
    assert.ok(minted && minted !== admin);
    const who = await call(on.url, 'GET', '/v1/auth/whoami', undefined, {
      authorization: `Bearer ${minted}`,
    });
    assert.equal(who.body.role, 'viewer');
    const listed = (await on.cp.tokens.list()).find((t) => t.id === who.body.id);
    assert.ok(listed?.expiresAt, 'the page token expires');
    assert.ok(Date.parse(listed.expiresAt) - Date.now() <= 3_600_000);
    assert.match(notes.join('\n'), /new viewer token/);
    assert.ok(!notes.join('\n').includes(minted), 'the note never shows the token');

    notes.length = 0;
    assert.equal(await pageToken(client(on.url, operator), operator, OPTS, note), operator);
    assert.match(notes.join('\n'), /own operator token/);

    notes.length = 0;
    assert.equal(await pageToken(client(on.url), undefined, OPTS, note), undefined);
    assert.match(notes.join('\n'), /paste a token/);
  } finally {
    for (const c of clients) await c.destroy();
    await off.close();
    await on.close();
  }
});
