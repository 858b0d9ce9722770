import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair } from '../../shared/sign/keys.ts';
import { airlock } from '../helpers/cli.ts';
import { generateImages, pushImages } from '../services/fixtures.ts';
import { startRegistry, type RegistryService } from '../services/registry.ts';

/**
 * A Docker credential helper named in config.json's credsStore supplies the
 * credentials `airlock pack` uses for a token-auth registry that refuses
 * anonymous tokens: a shell script docker-credential-airlocktest on the PATH
 * of the airlock process only, which answers for the registry's host (and
 * records what it was asked) and says "credentials not found" otherwise.
 */
describe('Docker credential helpers', () => {
  let registry: RegistryService;
  let work: string;
  let helperDir: string;
  const env = () => ({
    AIRLOCK_PASSWORD: 'pw',
    COSIGN_PASSWORD: undefined,
    DOCKER_CONFIG: join(work, 'docker'),
    PATH: `${helperDir}:${process.env.PATH}`,
    HELPER_LOG: join(work, 'asked'),
  });

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'airlock-credhelper-'));
    registry = await startRegistry({ auth: 'token', anonymous: 'deny' });
    const images = await generateImages({ seed: 5, images: [{ repository: 'app/web', tag: '1.0', layers: 1, layerSize: 20_000 }] });
    await pushImages(registry.url, images, { username: registry.username, password: registry.password });
    helperDir = join(work, 'bin');
    mkdirSync(helperDir);
    const answer = JSON.stringify({ ServerURL: registry.host, Username: registry.username, Secret: registry.password });
    writeFileSync(
      join(helperDir, 'docker-credential-airlocktest'),
      [
        '#!/bin/sh',
        '[ "$1" = get ] || exit 2',
        'read -r url || true',
        `printf '%s\\n' "$url" >> "$HELPER_LOG"`,
        `if [ "$url" = '${registry.host}' ]; then printf '%s' '${answer}'; else echo "credentials not found in native keychain"; exit 1; fi`,
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
    mkdirSync(join(work, 'docker'));
    const pair = generateKeyPair('pw');
    writeFileSync(join(work, 'airlock.key'), pair.privateKeyPem, { mode: 0o600 });
  });

  after(async () => {
    await registry?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  const packFrom = (host: string) => {
    const spec = join(work, `airlock-${host.replace(/\W/g, '_')}.yaml`);
    writeFileSync(spec, `name: web\nversion: 1.0.0\nimages:\n  - ${host}/app/web:1.0\n`);
    return airlock(['pack', '-f', spec, '-o', join(work, 'web.tar'), '--key', join(work, 'airlock.key'), '--plain-http'], { env: env() });
  };

  test('credsStore: the helper’s credentials get the token, and pack succeeds', async () => {
    writeFileSync(join(work, 'docker', 'config.json'), JSON.stringify({ auths: { [registry.host]: {} }, credsStore: 'airlocktest' }));
    const packed = await packFrom(registry.host);
    assert.equal(packed.code, 0, packed.stderr);
    assert.doesNotMatch(packed.stdout + packed.stderr, new RegExp(registry.password!));
    assert.deepEqual(readFileSync(join(work, 'asked'), 'utf8').trim().split('\n'), [registry.host]);
    assert.ok(registry.tokenRequests.some((r) => r.user === registry.username && r.status === 200), 'a token was issued to the helper’s user');
  });

  test('a helper with nothing for the registry means anonymous access, which this registry refuses (exit 4)', async () => {
    const other = `localhost:${registry.port}`; // the same registry under a name the helper does not know
    writeFileSync(join(work, 'docker', 'config.json'), JSON.stringify({ credsStore: 'airlocktest' }));
    const refused = await packFrom(other);
    assert.equal(refused.code, 4, refused.stderr);
    assert.match(refused.stderr, /refused|401|denied/i);
  });

  test('a helper that is not installed is a warning naming it', async () => {
    writeFileSync(join(work, 'docker', 'config.json'), JSON.stringify({ credHelpers: { [registry.host]: 'missing' } }));
    const refused = await packFrom(registry.host);
    assert.equal(refused.code, 4, refused.stderr);
    assert.match(refused.stderr, /docker-credential-missing is not on PATH/);
  });
});
