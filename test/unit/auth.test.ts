import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseChallenge, parseChallenges, repositoryScope } from '../../shared/registry/auth.ts';
import { describeRegistryErrors, resolveEndpoint } from '../../shared/registry/client.ts';

test('Bearer challenge with realm, service and several scopes', () => {
  const c = parseChallenge(
    'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull repository:a/b:pull,push"',
  );
  assert.deepEqual(c, {
    scheme: 'bearer',
    params: {
      realm: 'https://auth.docker.io/token',
      service: 'registry.docker.io',
      scope: 'repository:library/nginx:pull repository:a/b:pull,push',
    },
  });
});

test('challenge parameters: insufficient_scope error, spaces, escaped quotes, unquoted values', () => {
  const c = parseChallenge('Bearer realm="https://r/t", service=reg , error="insufficient_scope", x="a\\"b,c"');
  assert.equal(c?.params.service, 'reg');
  assert.equal(c?.params.error, 'insufficient_scope');
  assert.equal(c?.params.x, 'a"b,c');
});

test('Basic challenge, case-insensitive scheme, unknown schemes ignored', () => {
  assert.deepEqual(parseChallenge('basic realm="Registry Realm"'), { scheme: 'basic', params: { realm: 'Registry Realm' } });
  assert.equal(parseChallenge('Negotiate abc'), undefined);
  assert.equal(parseChallenge(''), undefined);
});

test('scope strings per the distribution token spec', () => {
  assert.equal(repositoryScope('library/nginx', ['pull']), 'repository:library/nginx:pull');
  assert.equal(repositoryScope('a/b', ['pull', 'push']), 'repository:a/b:pull,push');
});

test('endpoints: Docker Hub API host, plain HTTP only when asked, mirrors with a repository prefix', () => {
  assert.equal(resolveEndpoint('docker.io', {}).origin.href, 'https://registry-1.docker.io/');
  assert.equal(resolveEndpoint('127.0.0.1:5000', {}).origin.href, 'https://127.0.0.1:5000/');
  assert.equal(resolveEndpoint('127.0.0.1:5000', { plainHttp: true }).origin.href, 'http://127.0.0.1:5000/');
  const m = resolveEndpoint('docker.io', { mirrors: { 'docker.io': 'https://harbor.example.com/dockerhub-proxy/' } });
  assert.equal(m.origin.href, 'https://harbor.example.com/');
  assert.equal(m.repositoryPrefix, 'dockerhub-proxy/');
  assert.equal(m.registry, 'docker.io');
  const plain = resolveEndpoint('docker.io', { mirrors: { 'docker.io': 'http://127.0.0.1:5000' } });
  assert.equal(plain.origin.href, 'http://127.0.0.1:5000/');
  assert.equal(plain.repositoryPrefix, '');
});

test('registry error bodies are summarized with their codes', () => {
  assert.equal(
    describeRegistryErrors('{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}'),
    'DENIED: requested access to the resource is denied',
  );
  assert.equal(describeRegistryErrors('Method not allowed\n'), '(Method not allowed)');
  assert.equal(describeRegistryErrors(''), '');
});

test('several challenges: Bearer over Basic, unknown schemes skipped (RFC 9110 §11.6.1, as docker chooses)', () => {
  const both = 'Negotiate, Basic realm="Artifactory Realm", Bearer realm="https://r/token",service="reg",scope="repository:a/b:pull"';
  assert.deepEqual(parseChallenge(both), {
    scheme: 'bearer',
    params: { realm: 'https://r/token', service: 'reg', scope: 'repository:a/b:pull' },
  });
  assert.deepEqual(parseChallenge('NTLM, Negotiate YIIB==, Basic realm="x"'), { scheme: 'basic', params: { realm: 'x' } });
  assert.deepEqual(
    parseChallenges('Basic realm="a, b", Bearer realm="https://t"').map((c) => c.scheme),
    ['basic', 'bearer'],
  );
  assert.equal(parseChallenge('Negotiate, NTLM'), undefined);
});
