import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeNetworkFailure, networkCause, UNKNOWN_CA_WORDS } from '../../shared/net/errors.ts';
import { RetrySummary } from '../../shared/net/retry-summary.ts';

const coded = (message: string, code: string, cause?: unknown) => Object.assign(new Error(message, cause === undefined ? undefined : { cause }), { code });

test('network causes in words; undici and Node codes never show', () => {
  // undici wraps the socket's error: the innermost code wins.
  const refused = new TypeError('fetch failed', { cause: coded('connect ECONNREFUSED 127.0.0.1:1', 'ECONNREFUSED') });
  assert.equal(describeNetworkFailure(refused), 'connection refused');
  assert.equal(describeNetworkFailure(coded('other side closed', 'UND_ERR_SOCKET')), 'connection closed by the server');
  assert.equal(describeNetworkFailure(coded('The client is destroyed', 'UND_ERR_CLOSED')), 'connection closed');
  assert.equal(describeNetworkFailure(coded('getaddrinfo ENOTFOUND nowhere.invalid', 'ENOTFOUND')), 'host not found (DNS)');
  assert.equal(describeNetworkFailure(coded('Headers Timeout Error', 'UND_ERR_HEADERS_TIMEOUT')), 'no progress for 60 s (--timeout)');
  const tls = networkCause(coded('unable to verify the first certificate', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'));
  assert.deepEqual(tls, { words: UNKNOWN_CA_WORDS, tls: true });
  assert.match(describeNetworkFailure(coded('self-signed certificate in certificate chain', 'SELF_SIGNED_CERT_IN_CHAIN')), /pass --ca-file$/);
  assert.match(describeNetworkFailure(new Error('1C:error:0A00010B:SSL routines:ssl3_get_record:wrong version number')), /does not speak TLS.*--plain-http/);
  // Unknown: the messages, with any undici code name left out.
  assert.equal(describeNetworkFailure(coded('something odd (UND_ERR_WHATEVER)', 'UND_ERR_WHATEVER')), 'something odd');
  assert.equal(networkCause(new Error('no such thing')), undefined);
});

test('retry summary: one line per endpoint and cause with a count, every interval and at the end', () => {
  const lines: string[] = [];
  const timers: (() => void)[] = [];
  const summary = new RetrySummary((l) => lines.push(l), { schedule: (fn) => (timers.push(fn), () => timers.splice(timers.indexOf(fn), 1)) });
  for (let i = 0; i < 30; i++) summary.record('http://127.0.0.1:5000', 'connection refused');
  summary.record('https://git.internal', 'HTTP 503');
  assert.equal(lines.length, 0, 'nothing per retry');
  assert.equal(timers.length, 1, 'one timer for the lot');
  timers.shift()!();
  assert.deepEqual(lines, ['http://127.0.0.1:5000: connection refused: retried 30 times', 'https://git.internal: HTTP 503: retried 1 time']);
  summary.record('http://127.0.0.1:5000', 'connection refused');
  summary.close();
  assert.deepEqual(lines.slice(2), ['http://127.0.0.1:5000: connection refused: retried 1 time']);
  assert.equal(timers.length, 0, 'close leaves no timer');
  assert.equal(summary.retries, 32);
  summary.close();
  assert.equal(lines.length, 3, 'nothing new: nothing written');
});
