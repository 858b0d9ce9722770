import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkoutBranch } from '../../scripts/demo-checkout.ts';
import { startGitServer } from '../services/gitServer.ts';

/** Every file under `dir`, .git included. */
async function allFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await allFiles(p)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

test("the demo's checkout of prod (git over HTTPS with Basic auth) leaves the git password in no file", async (t) => {
  const server = await startGitServer();
  const work = await mkdtemp(join(tmpdir(), 'airlock-demo-checkout-'));
  t.after(async () => {
    await server.stop();
    await rm(work, { recursive: true, force: true });
  });
  await server.createRepo('enclave-apps', { branch: 'prod', files: { 'README.md': 'apps\n' } });
  const dir = join(work, 'enclave-apps');

  await checkoutBranch({ url: server.url('enclave-apps'), branch: 'prod', dir, username: server.username, password: server.password, caFile: server.caFile });

  assert.equal(await readFile(join(dir, 'README.md'), 'utf8'), 'apps\n', 'the checkout has the branch');
  const files = await allFiles(dir);
  assert.ok(files.some((f) => f.endsWith(join('.git', 'config'))));
  for (const f of files) {
    assert.ok(!(await readFile(f)).includes(server.password), `${f} holds the git password`);
  }
});
