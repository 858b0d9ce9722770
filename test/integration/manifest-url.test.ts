import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { create as createTar } from 'tar';
import { fetchManifests } from '../../packer/sources/manifests.ts';
import { HttpTransport } from '../../shared/registry/transport.ts';
import { FAST_RETRY } from '../helpers/retry.ts';
import { tarFile, TAR_END } from '../helpers/tar.ts';
import { startNginx, type NginxService } from '../services/nginx.ts';

/** manifests: url sources against a real nginx over HTTPS with its own CA. */
describe('manifests from URLs', () => {
  let web: NginxService;
  let root: string;
  let work: string;
  const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
  const app = 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: app }\n';

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'airlock-www-'));
    work = mkdtempSync(join(tmpdir(), 'airlock-msrc-'));
    writeFileSync(join(root, 'app.yaml'), app);
    // A release archive: deploy/{kustomization.yaml, base/web.yaml}
    const tree = join(work, 'tree');
    mkdirSync(join(tree, 'deploy', 'base'), { recursive: true });
    writeFileSync(join(tree, 'deploy', 'kustomization.yaml'), 'resources: [base/web.yaml]\n');
    writeFileSync(join(tree, 'deploy', 'base', 'web.yaml'), 'kind: Deployment\n');
    await createTar({ gzip: true, file: join(root, 'release-1.0.tgz'), cwd: tree, portable: true }, ['deploy']);
    symlinkSync('/etc/passwd', join(tree, 'deploy', 'passwd.yaml'));
    await createTar({ gzip: true, file: join(root, 'symlink.tar.gz'), cwd: tree, portable: true }, ['deploy']);
    writeFileSync(join(root, 'escape.tar.gz'), gzipSync(Buffer.concat([tarFile('../escape.yaml', Buffer.from('kind: Secret\n')), TAR_END])));
    web = await startNginx({ root, tls: true });
  });

  after(async () => {
    await web?.stop();
    rmSync(root, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });

  const fetch = async (url: string, sha256?: string, trustTestCA = true) => {
    const transport = new HttpTransport({ caFile: trustTestCA ? web.caFile : undefined, retry: FAST_RETRY });
    const dir = mkdtempSync(join(work, 'w-'));
    try {
      return await fetchManifests([{ kind: 'url', url, ...(sha256 ? { sha256 } : {}) }], { workDir: dir, transport });
    } finally {
      await transport.close();
    }
  };
  const exit = (code: number, re: RegExp) => (e: Error & { exitCode?: number; hint?: string }) => {
    assert.equal(e.exitCode, code, e.message);
    assert.match(`${e.message}\n${e.hint ?? ''}`, re);
    return true;
  };

  test('a single file over HTTPS with the enclave CA, checked against its pin', async () => {
    const [file, ...rest] = await fetch(`${web.url}/app.yaml`, sha(app));
    assert.equal(rest.length, 0);
    assert.equal(file!.path, 'manifests/app.yaml');
    assert.equal(file!.sha256, sha(app));
    assert.equal(readFileSync(file!.file, 'utf8'), app);
  });

  test('a wrong pin is exit 3 naming the URL and both digests', async () => {
    await assert.rejects(fetch(`${web.url}/app.yaml`, 'a'.repeat(64)), exit(3, new RegExp(`app\\.yaml has sha256 ${sha(app)}, the spec pins a{64}`)));
  });

  test('a .tgz archive lands under manifests/<archive name>/', async () => {
    const archive = readFileSync(join(root, 'release-1.0.tgz'));
    const files = await fetch(`${web.url}/release-1.0.tgz`, sha(archive));
    assert.deepEqual(files.map((f) => f.path), ['manifests/release-1.0/deploy/base/web.yaml', 'manifests/release-1.0/deploy/kustomization.yaml']);
  });

  test('archives with a symlink or a ../ entry are refused (exit 3)', async () => {
    await assert.rejects(fetch(`${web.url}/symlink.tar.gz`), exit(3, /unsafe entry: .*passwd\.yaml is a SymbolicLink/));
    await assert.rejects(fetch(`${web.url}/escape.tar.gz`), exit(3, /unsafe entry|outside/));
  });

  test('404 and an untrusted certificate are remote failures (exit 4)', async () => {
    await assert.rejects(fetch(`${web.url}/nope.yaml`), exit(4, /HTTP 404/));
    await assert.rejects(fetch(`${web.url}/app.yaml`, undefined, false), exit(4, /certificate[\s\S]*--ca-file/));
  });
});
