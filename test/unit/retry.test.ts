import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_RETRY,
  isRetryableNetworkError,
  isRetryableStatus,
  parseRetryAfter,
  retryDelayMs,
} from '../../shared/registry/retry.ts';

test('retryable statuses are 408, 429 and 5xx gateway errors, not 4xx', () => {
  for (const s of [408, 429, 500, 502, 503, 504]) assert.equal(isRetryableStatus(s), true, String(s));
  for (const s of [200, 201, 400, 401, 403, 404, 405, 412, 416, 501]) assert.equal(isRetryableStatus(s), false, String(s));
});

test('connection errors are retryable, also when wrapped as a cause', () => {
  const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
  assert.equal(isRetryableNetworkError(reset), true);
  assert.equal(isRetryableNetworkError(new Error('fetch failed', { cause: reset })), true);
  const undiciSocket = Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' });
  assert.equal(isRetryableNetworkError(undiciSocket), true);
  const tls = Object.assign(new Error('unable to verify the first certificate'), {
    code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  });
  assert.equal(isRetryableNetworkError(tls), false);
  assert.equal(isRetryableNetworkError(new Error('plain')), false);
  assert.equal(isRetryableNetworkError('string'), false);
});

test('Retry-After in seconds and as an HTTP date', () => {
  assert.equal(parseRetryAfter('3'), 3000);
  assert.equal(parseRetryAfter(' 0 '), 0);
  const now = Date.parse('Tue, 24 Nov 2026 12:00:00 GMT');
  assert.equal(parseRetryAfter('Tue, 24 Nov 2026 12:00:05 GMT', now), 5000);
  assert.equal(parseRetryAfter('Tue, 24 Nov 2026 11:59:00 GMT', now), 0);
  assert.equal(parseRetryAfter(undefined), undefined);
  assert.equal(parseRetryAfter('soon'), undefined);
});

test('backoff grows exponentially with full jitter and is capped', () => {
  const p = { ...DEFAULT_RETRY, baseDelayMs: 100, maxDelayMs: 1000 };
  assert.equal(retryDelayMs(1, p, undefined, () => 1), 100);
  assert.equal(retryDelayMs(2, p, undefined, () => 1), 200);
  assert.equal(retryDelayMs(3, p, undefined, () => 1), 400);
  assert.equal(retryDelayMs(10, p, undefined, () => 1), 1000);
  assert.equal(retryDelayMs(3, p, undefined, () => 0), 0);
  assert.equal(retryDelayMs(3, p, undefined, () => 0.5), 200);
});

test('Retry-After is a floor for the delay, bounded by maxRetryAfterMs', () => {
  const p = { ...DEFAULT_RETRY, baseDelayMs: 100, maxDelayMs: 1000, maxRetryAfterMs: 5000 };
  assert.equal(retryDelayMs(1, p, 2000, () => 1), 2000);
  assert.equal(retryDelayMs(4, p, 10, () => 1), 800);
  assert.equal(retryDelayMs(1, p, 120_000, () => 1), 5000);
});
