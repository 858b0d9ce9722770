import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HashPool, type HashRange } from '../../shared/bundle/hash-pool.ts';

/** Two files as volumes of one address space; ranges inside one, and one across both. */
async function volumes(): Promise<{ dir: string; a: string; b: string; bytes: Buffer }> {
  const dir = await mkdtemp(join(tmpdir(), 'airlock-hash-pool-'));
  const bytes = randomBytes(5 * (1 << 20) + 123);
  const a = join(dir, 'v.000');
  const b = join(dir, 'v.001');
  await writeFile(a, bytes.subarray(0, 3 << 20));
  await writeFile(b, bytes.subarray(3 << 20));
  return { dir, a, b, bytes };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function ranges(v: { a: string; b: string; bytes: Buffer }): HashRange<string>[] {
  const split = 3 << 20;
  return [
    { item: 'first', pieces: [{ path: v.a, start: 0, size: 1000 }], size: 1000, sha256: sha(v.bytes.subarray(0, 1000)) },
    { item: 'across', pieces: [{ path: v.a, start: 1000, size: split - 1000 }, { path: v.b, start: 0, size: 2 << 20 }], size: split - 1000 + (2 << 20), sha256: sha(v.bytes.subarray(1000, split + (2 << 20))) },
    { item: 'last', pieces: [{ path: v.b, start: 2 << 20, size: 123 }], size: 123, sha256: sha(v.bytes.subarray(split + (2 << 20))) },
    { item: 'empty', pieces: [], size: 0, sha256: sha(Buffer.alloc(0)) },
  ];
}

for (const [threads, mainThread] of [[1, true], [2, true], [2, false]] as const) {
  const how = `${threads} thread(s)${mainThread ? ', the main thread one of them' : ', workers only'}`;

  test(`${how}: every range checks out, each counted once`, async () => {
    const v = await volumes();
    const pool = new HashPool(threads, { mainThread });
    try {
      let counted = 0;
      assert.equal(await pool.hash(ranges(v), { onVerified: (n) => (counted += n) }), undefined);
      assert.equal(counted, v.bytes.length);
    } finally {
      await pool.close();
      await rm(v.dir, { recursive: true, force: true });
    }
  });

  test(`${how}: a range whose bytes differ is named with the digest found`, async () => {
    const v = await volumes();
    const pool = new HashPool(threads, { mainThread });
    try {
      const all = ranges(v);
      all[1] = { ...all[1]!, sha256: 'f'.repeat(64) };
      const failure = await pool.hash(all);
      assert.equal(failure?.range.item, 'across');
      assert.equal(failure?.hex, sha(v.bytes.subarray(1000, (3 << 20) + (2 << 20))));
    } finally {
      await pool.close();
      await rm(v.dir, { recursive: true, force: true });
    }
  });

  test(`${how}: a range past the end of its file is an error, not a digest`, async () => {
    const v = await volumes();
    const pool = new HashPool(threads, { mainThread });
    try {
      const failure = await pool.hash([{ item: 'cut', pieces: [{ path: v.b, start: (2 << 20) + 100, size: 50 }], size: 50, sha256: 'a'.repeat(64) }]);
      assert.equal(failure?.range.item, 'cut');
      assert.match(failure?.error ?? '', /unexpected end of file/);
      const missing = await pool.hash([{ item: 'gone', pieces: [{ path: join(v.dir, 'nope'), start: 0, size: 1 }], size: 1, sha256: 'a'.repeat(64) }]);
      assert.match(missing?.error ?? '', /ENOENT/);
    } finally {
      await pool.close();
      await rm(v.dir, { recursive: true, force: true });
    }
  });
}

test('aborted: hash() resolves without a failure and hashes nothing more', async () => {
  const v = await volumes();
  const pool = new HashPool(2, { mainThread: true });
  try {
    const controller = new AbortController();
    controller.abort();
    let counted = 0;
    assert.equal(await pool.hash(ranges(v), { signal: controller.signal, onVerified: (n) => (counted += n) }), undefined);
    assert.equal(counted, 0);
  } finally {
    await pool.close();
    await rm(v.dir, { recursive: true, force: true });
  }
});
