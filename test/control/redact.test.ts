/** `redact` (what `/v1/proxies/{target}/diagnose` shows of a proxy's `/config`). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { redact } from '../../src/control/api/proxies-diagnose.ts';

test('redact hides the value of a header pair named like a credential, keeps other pairs', () => {
  const filter = {
    type: 'RequestHeaderModifier',
    requestHeaderModifier: {
      set: [
        { name: 'Authorization', value: 'Bearer s3cr3t' },
        { name: 'X-Api-Key', value: 'k-123' },
        { name: 'x-env', value: 'prod' },
      ],
    },
  };
  const shown = JSON.stringify(redact({ resources: [{ spec: { rules: [{ filters: [filter] }] } }] }));
  assert.ok(!shown.includes('s3cr3t'), shown);
  assert.ok(!shown.includes('k-123'), shown);
  assert.ok(shown.includes('"name":"Authorization"'), 'the header name stays');
  assert.ok(shown.includes('"value":"prod"'), 'harmless values stay');
});

test('redact keeps numbers under token-like names (a rate limit is config, not a secret), hides strings', () => {
  const shown = redact({
    rateLimit: { maxTokens: 10, tokensPerFill: 5, fillInterval: '1s' },
    auth: { token: 'hxat.abc.def', privateKeyPem: 'x' },
  }) as { rateLimit: Record<string, unknown>; auth: Record<string, unknown> };
  assert.deepEqual(shown.rateLimit, { maxTokens: 10, tokensPerFill: 5, fillInterval: '1s' });
  assert.deepEqual(shown.auth, { token: '<redacted>', privateKeyPem: '<redacted>' });
});
