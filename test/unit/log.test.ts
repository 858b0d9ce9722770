import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { Logger, redact, redactValue } from '../../shared/cli/log.ts';

function sink() {
  const stream = new PassThrough();
  let out = '';
  stream.on('data', (c: Buffer) => (out += c.toString()));
  return { stream, text: () => out };
}

test('redact: Authorization headers keep the scheme', () => {
  assert.equal(redact('Authorization: Bearer eyJhbGciOi.abc.def'), 'Authorization: Bearer ***');
  assert.equal(redact('authorization: Basic dXNlcjpwYXNz'), 'authorization: Basic ***');
  assert.equal(redact('Proxy-Authorization: Basic dXNlcjpwYXNz x'), 'Proxy-Authorization: Basic *** x');
  assert.equal(redact('{"Authorization":"Bearer abc"}'), '{"Authorization":"Bearer ***"}');
  assert.equal(redact('authorization=abc'), 'authorization=***');
  assert.equal(redact('the registry refused authorization for r'), 'the registry refused authorization for r');
});

test('redact: password=, token= and friends', () => {
  assert.equal(redact('POST /token body: grant_type=password&username=u&password=hunter2&x=1'),
    'POST /token body: grant_type=password&username=u&password=***&x=1');
  assert.equal(redact('https://auth/token?access_token=abc&scope=x'), 'https://auth/token?access_token=***&scope=x');
  assert.equal(redact('X-Amz-Signature=deadbeef'), 'X-Amz-Signature=***');
  assert.equal(redact('{"password": "p\\"w", "auth":"dXM6cA==", "username":"u"}'), '{"password": "***", "auth":"***", "username":"u"}');
});

test('redact: user:pass@ in URLs keeps the user', () => {
  assert.equal(redact('cloning https://bot:ghp_123@git.example/r.git'), 'cloning https://bot:***@git.example/r.git');
  assert.equal(redact('http://u:p@ss@h:5000/v2/'), 'http://u:***@h:5000/v2/');
  assert.equal(redact('sftp://user@host:22/path'), 'sftp://user@host:22/path', 'no password: unchanged');
  assert.equal(redact('http://127.0.0.1:5000/foo@sha256:abcd'), 'http://127.0.0.1:5000/foo@sha256:abcd');
  assert.equal(redact('oci://r.example/charts/h:0.21.0@sha256:ab'), 'oci://r.example/charts/h:0.21.0@sha256:ab');
});

test('redactValue: nested fields and secret-named keys', () => {
  assert.deepEqual(redactValue({ url: 'https://u:p@h/', headers: { Authorization: 'Basic x' }, n: 3, list: ['password=1'] }), {
    url: 'https://u:***@h/',
    headers: { Authorization: '***' },
    n: 3,
    list: ['password=***'],
  });
});

test('human lines go to stderr, with fields', () => {
  const err = sink();
  const out = sink();
  const log = new Logger({ stream: err.stream, jsonStream: out.stream, debug: false });
  log.info('pushed', { image: 'r/a:1', bytes: 12, note: 'two words' });
  log.warn('slow registry');
  log.error('failed https://u:pw@r/');
  log.debug('hidden');
  assert.equal(
    err.text(),
    'pushed image=r/a:1 bytes=12 note="two words"\n' + 'airlock: warning: slow registry\n' + 'airlock: error: failed https://u:***@r/\n',
  );
  assert.equal(out.text(), '');
});

test('JSON lines go to stdout, redacted', () => {
  const err = sink();
  const out = sink();
  const log = new Logger({ json: true, debug: true, stream: err.stream, jsonStream: out.stream, now: () => new Date(0) });
  log.info('token', { header: 'Authorization: Bearer abc', n: 1 });
  log.debug('d');
  const lines = out.text().trim().split('\n').map((l) => JSON.parse(l) as unknown);
  assert.deepEqual(lines, [
    { ts: '1970-01-01T00:00:00.000Z', event: 'log', header: 'Authorization: Bearer ***', n: 1, level: 'info', message: 'token' },
    { ts: '1970-01-01T00:00:00.000Z', event: 'log', level: 'debug', message: 'd' },
  ]);
  assert.equal(err.text(), '');
});

test('a status line is cleared before a log line and redrawn after', () => {
  const err = sink();
  const calls: string[] = [];
  const log = new Logger({ stream: err.stream, debug: false });
  log.attachStatusLine({ clear: () => calls.push('clear'), redraw: () => calls.push('redraw') });
  log.info('x');
  assert.deepEqual(calls, ['clear', 'redraw']);
});
