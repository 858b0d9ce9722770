import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs, { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import git from 'isomorphic-git';
import { pinnedImages } from '../../loader/gitops/pinned.ts';
import { putEntry } from '../../loader/gitops/repo.ts';

const d = (c: string) => `sha256:${c.repeat(64)}`;

test('pinned images: the base kustomization and the HelmReleases post-renderer images, each name@digest once', async () => {
  const gitdir = mkdtempSync(join(tmpdir(), 'airlock-pinned-'));
  try {
    await git.init({ fs, gitdir, bare: true });
    const files: Record<string, string> = {
      'h/base/kustomization.yaml': `resources: [a.yaml]\nimages:\n  - name: nginx\n    newName: reg:5000/library/nginx\n    digest: ${d('a')}\n  - name: docker.io/library/nginx\n    newName: reg:5000/library/nginx\n    digest: ${d('a')}\n  - name: tagged\n    newName: reg:5000/x\n    newTag: "1"\n`,
      'h/base/delegate/helmrelease.yaml': `apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nspec:\n  postRenderers:\n    - kustomize:\n        images:\n          - name: harness/delegate\n            newName: reg:5000/harness/delegate\n            digest: ${d('b')}\n`,
      'h/base/delegate/ocirepository.yaml': 'kind: OCIRepository\n',
      'h/base/other/helmrelease.yaml': 'kind: ConfigMap\nspec: { postRenderers: [ { kustomize: { images: [ { newName: reg:5000/not, digest: "' + d('c') + '" } ] } } ] }\n',
    };
    let tree: string | undefined;
    for (const [path, text] of Object.entries(files)) {
      const oid = await git.writeBlob({ fs, gitdir, blob: Buffer.from(text) });
      tree = await putEntry(gitdir, tree, path.split('/'), { mode: '100644', oid, type: 'blob' });
    }
    const who = { name: 't', email: 't@t', timestamp: 0, timezoneOffset: 0 };
    const commit = await git.writeCommit({ fs, gitdir, commit: { message: 'x\n', tree: tree!, parent: [], author: who, committer: who } });
    assert.deepEqual(await pinnedImages(gitdir, commit, 'h', 'dev'), [
      { newName: 'reg:5000/harness/delegate', digest: d('b') },
      { newName: 'reg:5000/library/nginx', digest: d('a') },
    ]);
    await assert.rejects(pinnedImages(gitdir, commit, 'nothere', 'dev'), /dev has no nothere\/base\/kustomization\.yaml/);
  } finally {
    rmSync(gitdir, { recursive: true, force: true });
  }
});
