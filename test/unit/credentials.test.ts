import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from '../../shared/cli/errors.ts';
import { credentialsFor, defaultDockerConfigPath, IDENTITY_TOKEN_USERNAME, normalizeRegistryKey } from '../../shared/registry/credentials.ts';

const b64 = (s: string) => Buffer.from(s).toString('base64');

function tempConfig(t: { after: (fn: () => void) => void }, content: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-creds-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'config.json');
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

/** credentialsFor with a config file and a warning collector. */
function lookup(registry: string, path: string, extra: Parameters<typeof credentialsFor>[1] = {}) {
  const warnings: string[] = [];
  const creds = credentialsFor(registry, { dockerConfigPath: path, env: {}, warn: (m) => warnings.push(m), ...extra });
  return { creds, warnings };
}

test('explicit username and password from the named environment variable', () => {
  const creds = credentialsFor('r.example', { username: 'ci', passwordEnv: 'REG_PW', env: { REG_PW: 's3cret:with:colons' } });
  assert.deepEqual(creds, { username: 'ci', password: 's3cret:with:colons' });
});

test('explicit flags win over the Docker config', (t) => {
  const path = tempConfig(t, { auths: { 'r.example': { auth: b64('docker:pw') } } });
  const { creds } = lookup('r.example', path, { username: 'ci', passwordEnv: 'PW', env: { PW: 'x' } });
  assert.deepEqual(creds, { username: 'ci', password: 'x' });
});

test('unset or empty password variable: a UsageError naming the variable, never a value', () => {
  for (const env of [{}, { REG_PW: '' }]) {
    assert.throws(
      () => credentialsFor('r', { username: 'ci', passwordEnv: 'REG_PW', env }),
      (err: unknown) => err instanceof UsageError && /REG_PW/.test(err.message) && /not set or empty/.test(err.message),
    );
  }
});

test('only one of username / password-env: UsageError', () => {
  assert.throws(() => credentialsFor('r', { username: 'ci', env: {} }), UsageError);
  assert.throws(() => credentialsFor('r', { passwordEnv: 'PW', env: { PW: 'x' } }), /go together/);
});

test('registry keys: schemes, /v1/ paths, Docker Hub aliases', () => {
  assert.equal(normalizeRegistryKey('https://index.docker.io/v1/'), 'docker.io');
  assert.equal(normalizeRegistryKey('registry-1.docker.io'), 'docker.io');
  assert.equal(normalizeRegistryKey('http://Registry.Example:5000/v1/'), 'registry.example:5000');
  assert.equal(normalizeRegistryKey('https://r.example/v2'), 'r.example');
  assert.equal(normalizeRegistryKey('ghcr.io/org'), 'ghcr.io/org');
});

test('Docker config: bare host, https://host, http://host/v1/ keys', (t) => {
  const path = tempConfig(t, {
    auths: {
      'a.example': { auth: b64('ua:pa') },
      'https://b.example:5000': { auth: b64('ub:pb') },
      'http://c.example/v1/': { username: 'uc', password: 'pc' },
      'ghcr.io/org': { auth: b64('org:x') },
    },
  });
  assert.deepEqual(lookup('a.example', path).creds, { username: 'ua', password: 'pa' });
  assert.deepEqual(lookup('b.example:5000', path).creds, { username: 'ub', password: 'pb' });
  assert.equal(lookup('b.example', path).creds, undefined, 'the port is part of the host');
  assert.deepEqual(lookup('c.example', path).creds, { username: 'uc', password: 'pc' });
  assert.equal(lookup('ghcr.io', path).creds, undefined, 'a namespaced key does not match the bare host');
  assert.equal(lookup('unknown.example', path).creds, undefined);
});

test('Docker Hub: every alias finds the https://index.docker.io/v1/ entry', (t) => {
  const path = tempConfig(t, { auths: { 'https://index.docker.io/v1/': { auth: b64('hub:pw') } } });
  for (const r of ['docker.io', 'index.docker.io', 'registry-1.docker.io', 'https://index.docker.io/v1/']) {
    assert.deepEqual(lookup(r, path).creds, { username: 'hub', password: 'pw' }, r);
  }
});

test('an entry written exactly as asked wins over an alias', (t) => {
  const path = tempConfig(t, {
    auths: { 'https://index.docker.io/v1/': { auth: b64('old:1') }, 'docker.io': { auth: b64('new:2') } },
  });
  assert.deepEqual(lookup('docker.io', path).creds, { username: 'new', password: '2' });
});

test('auth: the password may contain ":"; identitytoken wins', (t) => {
  const path = tempConfig(t, {
    auths: {
      'a.example': { auth: b64('user:pa:ss:word') },
      't.example': { auth: b64('user:pw'), identitytoken: 'refresh-token' },
    },
  });
  assert.deepEqual(lookup('a.example', path).creds, { username: 'user', password: 'pa:ss:word' });
  assert.deepEqual(lookup('t.example', path).creds, { username: '<token>', password: 'refresh-token' });
});

/**
 * docker-credential-* helpers as shell scripts in a temp dir, found through the PATH given
 * as env. Each appends the server URL it was asked for to $HELPER_LOG.
 */
function helpers(t: { after: (fn: () => void) => void }) {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-helpers-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const log = join(dir, 'asked');
  const script = (name: string, body: string) =>
    writeFileSync(join(dir, `docker-credential-${name}`), `#!/bin/sh\nread -r url || true\nprintf '%s\\n' "$url" >> "$HELPER_LOG"\n${body}\n`, { mode: 0o755 });
  script(
    'store',
    [
      'case "$url" in',
      `  r.example) printf '{"ServerURL":"%s","Username":"hu","Secret":"hs-secret"}' "$url" ;;`,
      `  tok.example) printf '{"ServerURL":"%s","Username":"<token>","Secret":"id-token"}' "$url" ;;`,
      `  https://index.docker.io/v1/) printf '{"ServerURL":"%s","Username":"hub","Secret":"hub-secret"}' "$url" ;;`,
      '  broken.example) echo "error getting credentials: the keychain is locked"; exit 1 ;;',
      '  garbage.example) echo "user=hu secret=hs-secret" ;;',
      '  slow.example) sleep 10 ;;',
      '  *) echo "credentials not found in native keychain"; exit 1 ;;',
      'esac',
    ].join('\n'),
  );
  script('ecr', `printf '{"ServerURL":"%s","Username":"AWS","Secret":"ecr-secret"}' "$url"`);
  const env = { PATH: `${dir}:/usr/bin:/bin`, HELPER_LOG: log };
  const asked = () => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : []);
  return { env, asked };
}

test('credential helpers: credsStore answers with the credentials it has, the server URL on stdin; "<token>" is an identity token', (t) => {
  const h = helpers(t);
  const path = tempConfig(t, { auths: { 'r.example': {}, 'https://index.docker.io/v1/': {} }, credsStore: 'store' });
  assert.deepEqual(lookup('r.example', path, { env: h.env }), { creds: { username: 'hu', password: 'hs-secret' }, warnings: [] });
  assert.deepEqual(lookup('tok.example', path, { env: h.env }).creds, { username: IDENTITY_TOKEN_USERNAME, password: 'id-token' });
  assert.deepEqual(lookup('docker.io', path, { env: h.env }).creds, { username: 'hub', password: 'hub-secret' });
  assert.deepEqual(h.asked(), ['r.example', 'tok.example', 'https://index.docker.io/v1/']);
});

test('credential helpers: credHelpers[host] wins over credsStore, which wins over an inline entry; "not found" falls back to the inline entry, else anonymous', (t) => {
  const h = helpers(t);
  const path = tempConfig(t, {
    auths: { 'r.example': { auth: b64('inline:pw') }, 'inline.example': { auth: b64('u:p') } },
    credsStore: 'store',
    credHelpers: { '123.dkr.ecr.us-east-1.amazonaws.com': 'ecr', 'tok.example': 'ecr' },
  });
  assert.deepEqual(lookup('123.dkr.ecr.us-east-1.amazonaws.com', path, { env: h.env }).creds, { username: 'AWS', password: 'ecr-secret' });
  assert.deepEqual(lookup('tok.example', path, { env: h.env }).creds, { username: 'AWS', password: 'ecr-secret' }, 'credHelpers before credsStore');
  assert.deepEqual(lookup('r.example', path, { env: h.env }).creds, { username: 'hu', password: 'hs-secret' }, 'the store before the inline entry');
  assert.deepEqual(lookup('inline.example', path, { env: h.env }), { creds: { username: 'u', password: 'p' }, warnings: [] }, 'not found: the inline entry');
  assert.deepEqual(lookup('public.example', path, { env: h.env }), { creds: undefined, warnings: [] }, 'not found, nothing inline: anonymous');
});

test('credential helpers: one that is not installed is a warning naming it (only where credentials were expected), then the inline entry or anonymous', (t) => {
  const h = helpers(t);
  const path = tempConfig(t, {
    auths: { 'https://index.docker.io/v1/': {}, 'inline.example': { auth: b64('u:p') } },
    credsStore: 'desktop',
    credHelpers: { 'gone.example': 'nope' },
  });
  let r = lookup('gone.example', path, { env: h.env });
  assert.equal(r.creds, undefined);
  assert.equal(r.warnings.length, 1);
  assert.match(r.warnings[0]!, /credHelpers\["gone\.example"\] names the credential helper "nope", but docker-credential-nope is not on PATH/);
  r = lookup('docker.io', path, { env: h.env });
  assert.equal(r.creds, undefined);
  assert.match(r.warnings[0]!, /credsStore names the credential helper "desktop", but docker-credential-desktop is not on PATH/);
  r = lookup('inline.example', path, { env: h.env });
  assert.deepEqual(r.creds, { username: 'u', password: 'p' }, 'inline credentials still work');
  assert.equal(r.warnings.length, 1);
  assert.deepEqual(lookup('public.example', path, { env: h.env }), { creds: undefined, warnings: [] }, 'no warning for a registry the store was never given');
});

test('credential helpers: a failing, garbled or hanging helper is a UsageError naming it, never showing a secret', (t) => {
  const h = helpers(t);
  const path = tempConfig(t, { credsStore: 'store' });
  const fails = (registry: string, message: RegExp, extra: Parameters<typeof credentialsFor>[1] = {}) =>
    assert.throws(
      () => lookup(registry, path, { env: h.env, ...extra }),
      (err: unknown) => {
        assert.ok(err instanceof UsageError, String(err));
        assert.match(err.message, message);
        assert.doesNotMatch(err.message + (err.hint ?? ''), /hs-secret/);
        return true;
      },
    );
  fails('broken.example', /credsStore: docker-credential-store failed for broken\.example \(exit 1\): error getting credentials: the keychain is locked/);
  fails('garbage.example', /docker-credential-store answered for garbage\.example with something that is not JSON/);
  const started = Date.now();
  fails('slow.example', /docker-credential-store did not answer for slow\.example within 1 s/, { helperTimeoutMs: 500 });
  assert.ok(Date.now() - started < 5000, 'the helper was stopped at its time limit');
  const bad = tempConfig(t, { credsStore: '../../bin/sh' });
  assert.throws(() => lookup('r.example', bad, { env: h.env }), /"\.\.\/\.\.\/bin\/sh" is not a credential helper name/);
});

test('malformed config: a UsageError naming the file, without its text', (t) => {
  const path = tempConfig(t, '{"auths": {"r": {"auth": "c2VjcmV0"}');
  assert.throws(
    () => lookup('r', path),
    (err: unknown) => err instanceof UsageError && err.message.includes(path) && !err.message.includes('c2VjcmV0'),
  );
  const arr = tempConfig(t, '[]');
  assert.throws(() => lookup('r', arr), /not a JSON object/);
  const badAuth = tempConfig(t, { auths: { r: { auth: b64('no-colon') } } });
  assert.throws(() => lookup('r', badAuth), /not base64 of user:password/);
});

test('no config file: anonymous', () => {
  assert.equal(lookup('r', join(tmpdir(), 'airlock-does-not-exist', 'config.json')).creds, undefined);
});

test('config location: $DOCKER_CONFIG, else ~/.docker/config.json', (t) => {
  assert.equal(defaultDockerConfigPath({ DOCKER_CONFIG: '/etc/dc' }), '/etc/dc/config.json');
  assert.equal(defaultDockerConfigPath({ HOME: '/home/u' }), '/home/u/.docker/config.json');

  const dir = mkdtempSync(join(tmpdir(), 'airlock-dc-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'dc'));
  writeFileSync(join(dir, 'dc', 'config.json'), JSON.stringify({ auths: { r: { auth: b64('u:p') } } }));
  assert.deepEqual(credentialsFor('r', { env: { DOCKER_CONFIG: join(dir, 'dc') } }), { username: 'u', password: 'p' });
  mkdirSync(join(dir, 'home', '.docker'), { recursive: true });
  writeFileSync(join(dir, 'home', '.docker', 'config.json'), JSON.stringify({ auths: { r: { auth: b64('h:q') } } }));
  assert.deepEqual(credentialsFor('r', { env: { HOME: join(dir, 'home') } }), { username: 'h', password: 'q' });
});
