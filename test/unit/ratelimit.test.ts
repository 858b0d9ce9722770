import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRateLimitValue, RateLimitTracker } from '../../shared/registry/ratelimit.ts';
import { proxyFromEnv, redactUserinfo } from '../../shared/registry/transport.ts';

// Docker Hub's headers (docs.docker.com/docker-hub/usage/pulls): "ratelimit-limit: 100;w=21600".
test('Docker Hub rate-limit headers: count and window', () => {
  assert.deepEqual(parseRateLimitValue('100;w=21600'), { count: 100, windowSeconds: 21600 });
  assert.deepEqual(parseRateLimitValue(' 76 ; w=21600'), { count: 76, windowSeconds: 21600 });
  assert.deepEqual(parseRateLimitValue('10'), { count: 10 });
  assert.equal(parseRateLimitValue('many'), undefined);
  assert.equal(parseRateLimitValue(undefined), undefined);
});

test('the tracker keeps the latest quota a registry announced, and none for a registry that announces none', () => {
  const t = new RateLimitTracker();
  t.observe('docker.io', { headers: { 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': '7;w=21600' } });
  t.observe('quay.io', { headers: {} });
  assert.deepEqual(t.quota('docker.io'), { limit: 100, remaining: 7, windowSeconds: 21600 });
  t.observe('docker.io', { headers: { 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': '6;w=21600' } });
  assert.equal(t.quota('docker.io')?.remaining, 6);
  assert.equal(t.quota('quay.io'), undefined);
});

test('proxy variables as curl reads them: lower-case first; credentials never shown', () => {
  assert.deepEqual(proxyFromEnv({ HTTPS_PROXY: 'http://A:3128', https_proxy: 'http://a:3128', NO_PROXY: 'x' }), {
    httpProxy: undefined,
    httpsProxy: 'http://a:3128',
    noProxy: 'x',
  });
  assert.equal(redactUserinfo('cannot reach via http://user:s3cret@proxy:3128/ now'), 'cannot reach via http://***@proxy:3128/ now');
  assert.equal(redactUserinfo('http://proxy:3128'), 'http://proxy:3128');
});
