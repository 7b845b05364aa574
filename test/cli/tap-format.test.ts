/** `hexmesh tap`'s text rows: a path longer than its column realigns the rows after it. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatTapLine, tapColumns, tapHeader, type TapLine } from '../../src/cli/commands/tap.ts';

const req = (path: string): TapLine => ({
  type: 'request',
  time: '2026-12-03T14:00:00.000Z',
  direction: 'outbound',
  srcService: 'reviews',
  dstService: 'ratings',
  method: 'POST',
  path,
  status: 200,
  grpcStatus: 0,
  latencyMs: 3,
  tls: true,
  proxy: 'reviews-v2-1',
});

test('a long path widens its column for the rows after it; the header and short rows before it are untouched', () => {
  const cols = tapColumns(false);
  const header = tapHeader(cols);
  const short = formatTapLine(req('/a'), cols)!;
  const long = formatTapLine(req('/shop.Ratings/GetRatingsForAllProducts'), cols)!;
  const after = formatTapLine(req('/b'), cols)!;
  // Before the long one: STATUS sits where the header put it.
  assert.equal(short.indexOf('200'), header.indexOf('STATUS'));
  // The long row pushes its own STATUS right, and the next row's STATUS lines up with it.
  assert.ok(long.indexOf('200') > header.indexOf('STATUS'));
  assert.equal(after.indexOf('200'), long.indexOf('200'));
  // A new output starts from the default widths again.
  assert.equal(formatTapLine(req('/c'), tapColumns(false))!.indexOf('200'), header.indexOf('STATUS'));
});
