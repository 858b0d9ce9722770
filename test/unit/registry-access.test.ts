import { test } from 'node:test';
import assert from 'node:assert/strict';
import { REGISTRY_FLAGS, registryAccess } from '../../shared/cli/main.ts';
import { ENV_REGISTRY_FLAGS } from '../../loader/envRegistryCli.ts';
import { registryOptions } from '../../shared/registry/access.ts';

const argv = {
  'registry-username': 'loader',
  'registry-password-env': 'ENCLAVE_PW',
  'plain-http': true,
  'client-cert': 'loader.crt',
  'client-key': 'loader.key',
  'env-registry-username': 'prod',
  'env-registry-password-env': 'PROD_PW',
  'env-registry-plain-http': false,
  'env-registry-client-cert': 'prod.crt',
  'env-registry-client-key': 'prod.key',
};
const log = { warn: () => undefined };

test('registryAccess: the flags of the registry a command names, or of the environment registry', () => {
  assert.deepEqual(registryAccess(argv), { username: 'loader', passwordEnv: 'ENCLAVE_PW', plainHttp: true, clientCert: 'loader.crt', clientKey: 'loader.key', flags: REGISTRY_FLAGS });
  assert.deepEqual(registryAccess(argv, ENV_REGISTRY_FLAGS), { username: 'prod', passwordEnv: 'PROD_PW', plainHttp: false, clientCert: 'prod.crt', clientKey: 'prod.key', flags: ENV_REGISTRY_FLAGS });
  assert.deepEqual(registryAccess({}), { username: undefined, passwordEnv: undefined, plainHttp: false, clientCert: undefined, clientKey: undefined, flags: REGISTRY_FLAGS });
});

test("registry access problems name the flags the access came from: the environment registry's own", () => {
  const unset = { ...registryAccess(argv, ENV_REGISTRY_FLAGS), passwordEnv: 'AIRLOCK_TEST_SURELY_UNSET', clientCert: undefined, clientKey: undefined };
  const options = registryOptions('prod-registry.enclave', unset, log);
  assert.throws(() => options.credentials!('prod-registry.enclave'), /AIRLOCK_TEST_SURELY_UNSET \(named by --env-registry-password-env\) is not set/);
  assert.throws(() => registryOptions('prod-registry.enclave', { ...unset, clientCert: 'prod.crt' }, log), /--env-registry-client-cert and --env-registry-client-key go together/);
  assert.throws(() => registryOptions('prod-registry.enclave', { ...unset, clientCert: '/nonexistent/prod.crt', clientKey: '/nonexistent/prod.key' }, log), /cannot read --env-registry-client-cert \/nonexistent\/prod\.crt/);
  // Without flags (a caller of the library): the usual names.
  assert.throws(() => registryOptions('reg.enclave', { clientCert: 'a.crt' }, log), (err: Error) => /^--client-cert and --client-key go together/.test(err.message));
});
