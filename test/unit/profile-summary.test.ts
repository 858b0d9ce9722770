import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { summarizeProfile } from '../../scripts/profile-summary.ts';

test('profile summary: self time per function and per module, lazy command chunk included', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'airlock-profile-'));
  try {
    // An unminified one-file build: module comments in the file and in its embedded command chunk.
    const chunk = ['// shared/bundle/hash.ts', 'function hashEntry() {}', '// node_modules/undici/lib/core.js', 'function Request() {}'].join('\n');
    const bundle = join(dir, 'airlock.mjs');
    await writeFile(bundle, ['var __init = 1;', '// packer/pack.ts', 'function pack() {}', `const code = ${JSON.stringify(chunk)};`].join('\n'));
    const url = pathToFileURL(bundle).href;
    const frame = (functionName: string, u: string, lineNumber: number) => ({ functionName, url: u, lineNumber });
    const profile = {
      nodes: [
        { id: 1, callFrame: frame('(root)', '', -1) },
        { id: 2, callFrame: frame('pack', url, 2) },
        { id: 3, callFrame: frame('hashEntry', `${url}%20(commands)`, 1) },
        { id: 4, callFrame: frame('Request', `${url}%20(commands)`, 3) },
        { id: 5, callFrame: frame('(garbage collector)', '', -1) },
        { id: 6, callFrame: frame('__init', url, 0) },
      ],
      samples: [2, 3, 3, 4, 5, 3, 6],
      timeDeltas: [1000, 2000, 2000, 500, 700, 2000, 100],
    };
    const file = join(dir, 'x.cpuprofile');
    await writeFile(file, JSON.stringify(profile));

    const s = summarizeProfile(file, 3);
    assert.equal(s.totalMs, 8.3);
    assert.deepEqual(s.functions[0], { name: 'hashEntry  shared/bundle/hash.ts:2', ms: 6 });
    assert.deepEqual(s.functions[1], { name: 'pack  packer/pack.ts:3', ms: 1 });
    assert.equal(s.functions.length, 3);
    const modules = Object.fromEntries(summarizeProfile(file).modules.map((m) => [m.name, m.ms]));
    assert.deepEqual(modules, { 'shared/bundle/hash.ts': 6, 'packer/pack.ts': 1, '(garbage collector)': 0.7, undici: 0.5, [relative(process.cwd(), bundle)]: 0.1 });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
