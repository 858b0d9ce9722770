import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { fetchManifests } from '../../packer/sources/manifests.ts';
import { repositoryName } from '../../packer/sources/git.ts';
import { s3FolderName } from '../../packer/sources/s3.ts';
import { parseS3Prefix } from '../../shared/transfer/s3.ts';
import type { ManifestSource } from '../../packer/spec.ts';
import { checkEntryPath } from '../../shared/bundle/format.ts';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/**
 * dir/
 *   deploy/kustomization.yaml
 *   deploy/base/app.yaml
 *   deploy/base/.git/HEAD        (skipped)
 *   deploy/.git                  (a worktree's .git file, skipped)
 *   crds.yaml
 *   work/                        (the workDir)
 */
function tree(t: TestContext) {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-msrc-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'deploy', 'base', '.git'), { recursive: true });
  mkdirSync(join(dir, 'work'));
  writeFileSync(join(dir, 'deploy', 'base', 'app.yaml'), 'kind: Deployment\n');
  writeFileSync(join(dir, 'deploy', 'base', '.git', 'HEAD'), 'ref: refs/heads/main\n');
  writeFileSync(join(dir, 'deploy', '.git'), 'gitdir: /elsewhere\n');
  writeFileSync(join(dir, 'deploy', 'kustomization.yaml'), 'resources: [base/app.yaml]\n');
  writeFileSync(join(dir, 'crds.yaml'), 'kind: CustomResourceDefinition\n');
  return dir;
}

const path = (p: string): ManifestSource => ({ kind: 'path', path: p });

/** Asserts the error's exit code and that its message (and hint) match; returns true for assert.rejects. */
const exit = (code: number, ...res: RegExp[]) => (e: Error & { exitCode?: number; hint?: string }) => {
  assert.equal(e.exitCode, code, e.message);
  for (const re of res) assert.match(`${e.message}\n${e.hint ?? ''}`, re);
  return true;
};

test('path sources: a directory lands under manifests/<its name>/ (recursively, .git skipped), a file under manifests/, sorted, with sizes and sha256', async (t) => {
  const dir = tree(t);
  const files = await fetchManifests([path(join(dir, 'deploy')), path(join(dir, 'crds.yaml'))], { workDir: join(dir, 'work') });
  assert.deepEqual(
    files.map((f) => f.path),
    ['manifests/crds.yaml', 'manifests/deploy/base/app.yaml', 'manifests/deploy/kustomization.yaml'],
  );
  for (const f of files) {
    assert.equal(checkEntryPath(f.path), undefined, f.path);
    assert.ok(isAbsolute(f.file), f.file);
    const bytes = readFileSync(f.file, 'utf8');
    assert.equal(f.size, Buffer.byteLength(bytes));
    assert.equal(f.sha256, sha(bytes));
  }
  const app = files.find((f) => f.path === 'manifests/deploy/base/app.yaml')!;
  assert.equal(app.file, join(dir, 'deploy', 'base', 'app.yaml'));
  assert.equal(app.size, 'kind: Deployment\n'.length);
  assert.equal(app.sha256, sha('kind: Deployment\n'));
});

test('path sources: a symlink inside a folder is refused (exit 2) naming it, with a hint to copy the file', async (t) => {
  const dir = tree(t);
  symlinkSync('/etc/passwd', join(dir, 'deploy', 'base', 'passwd.yaml'));
  await assert.rejects(
    fetchManifests([path(join(dir, 'deploy'))], { workDir: join(dir, 'work') }),
    exit(2, /manifests\[0\]\.path .*deploy: .*deploy\/base\/passwd\.yaml is a symbolic link; bundles carry regular files only/, /copy the file/),
  );
});

test('path sources: a named pipe is refused (exit 2)', async (t) => {
  const dir = tree(t);
  execFileSync('mkfifo', [join(dir, 'deploy', 'pipe.yaml')]);
  await assert.rejects(fetchManifests([path(join(dir, 'deploy'))], { workDir: join(dir, 'work') }), exit(2, /pipe\.yaml is a named pipe/));
});

test('path sources: the path the spec names may itself be a symlink (the user chose it); its name is the link’s', async (t) => {
  const dir = tree(t);
  symlinkSync(join(dir, 'deploy'), join(dir, 'vendor'));
  const files = await fetchManifests([path(join(dir, 'vendor'))], { workDir: join(dir, 'work') });
  assert.deepEqual(files.map((f) => f.path), ['manifests/vendor/base/app.yaml', 'manifests/vendor/kustomization.yaml']);
});

test('path sources: two sources giving the same bundle path are refused (exit 2) naming both', async (t) => {
  const dir = tree(t);
  mkdirSync(join(dir, 'other', 'deploy'), { recursive: true });
  writeFileSync(join(dir, 'other', 'deploy', 'kustomization.yaml'), 'resources: []\n');
  writeFileSync(join(dir, 'other', 'crds.yaml'), 'kind: CustomResourceDefinition\n');
  await assert.rejects(
    fetchManifests([path(join(dir, 'deploy')), path(join(dir, 'other', 'deploy'))], { workDir: join(dir, 'work') }),
    exit(2, new RegExp(`manifests\\[0\\]\\.path ${dir}/deploy and manifests\\[1\\]\\.path ${dir}/other/deploy both give manifests/deploy/kustomization\\.yaml`)),
  );
  await assert.rejects(
    fetchManifests([path(join(dir, 'crds.yaml')), path(join(dir, 'deploy')), path(join(dir, 'other', 'crds.yaml'))], { workDir: join(dir, 'work') }),
    exit(2, /manifests\[0\]\.path .*\/crds\.yaml and manifests\[2\]\.path .*\/other\/crds\.yaml both give manifests\/crds\.yaml/),
  );
});

test('path sources: a missing path is refused (exit 2) naming the spec field', async (t) => {
  const dir = tree(t);
  await assert.rejects(
    fetchManifests([path(join(dir, 'deploy')), path(join(dir, 'nope'))], { workDir: join(dir, 'work') }),
    exit(2, new RegExp(`^manifests\\[1\\]\\.path ${dir}/nope: no such file or directory`), /relative to the spec file/),
  );
});

test('path sources: an empty folder gives no files and a warning', async (t) => {
  const dir = tree(t);
  mkdirSync(join(dir, 'empty'));
  const log: string[] = [];
  assert.deepEqual(await fetchManifests([path(join(dir, 'empty'))], { workDir: join(dir, 'work'), onLog: (m) => log.push(m) }), []);
  assert.match(log.join('\n'), /manifests\[0\]\.path .*empty: no files/);
});

test('git sources: a password in the URL is refused (exit 2) before any connection, without showing it', async (t) => {
  const dir = tree(t);
  await assert.rejects(
    fetchManifests([{ kind: 'git', url: 'https://user:tok3n@git.example/x.git', ref: 'v1' }], { workDir: join(dir, 'work') }),
    (e: Error & { exitCode?: number; hint?: string }) => {
      exit(2, /^manifests\[0\]\.git\.url: the URL carries a password/, /secrets never go on the command line/)(e);
      assert.doesNotMatch(e.message + (e.hint ?? ''), /tok3n/);
      return true;
    },
  );
  await assert.rejects(
    fetchManifests([{ kind: 'git', url: 'https://git.example/x.git', ref: 'v1', path: 'deploy/../../etc' }], { workDir: join(dir, 'work') }),
    exit(2, /manifests\[0\]\.git\.path "deploy\/\.\.\/\.\.\/etc": not a folder inside the repository/),
  );
});

test('git and s3 sources: the folder each one lands in', () => {
  assert.equal(repositoryName('https://git.example/org/app.git'), 'app');
  assert.equal(repositoryName('https://git.example/org/app/'), 'app');
  assert.equal(repositoryName('ssh://git@git.example:2222/srv/platform.git'), 'platform');
  assert.equal(repositoryName('git@git.example:org/deploy.git'), 'deploy');
  assert.equal(repositoryName('https://git.example/'), undefined);
  assert.equal(s3FolderName('s3://bucket/releases/harness/'), 'harness');
  assert.equal(s3FolderName('s3://bucket/releases/harness'), 'harness');
  assert.equal(s3FolderName('s3://bucket'), 'bucket');
  assert.deepEqual(parseS3Prefix('s3://bucket/a/b'), { bucket: 'bucket', prefix: 'a/b/' });
  assert.deepEqual(parseS3Prefix('s3://bucket/'), { bucket: 'bucket', prefix: '' });
  assert.throws(() => parseS3Prefix('s3://B/x'), /expected s3:\/\/bucket\/prefix\//);
});
