import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { DiskFullError, diskFullOr, dropWhenDiskFull, ensureFreeSpace, isDiskFull } from '../../shared/fs/disk-full.ts';
import { ProgressWatch, setNetworkTimeoutSeconds, stallWords, StallError } from '../../shared/net/timeout.ts';
import { describeNetworkFailure } from '../../shared/net/errors.ts';
import { isRetryableNetworkError } from '../../shared/registry/retry.ts';
import { exitCodeOf } from '../../shared/cli/errors.ts';

const coded = (message: string, code: string) => Object.assign(new Error(message), { code });

test('ENOSPC and EDQUOT, also as a cause, are a full disk; other errors are not', () => {
  assert.equal(isDiskFull(coded('no space', 'ENOSPC')), true);
  assert.equal(isDiskFull(new Error('write failed', { cause: coded('quota', 'EDQUOT') })), true);
  assert.equal(isDiskFull(coded('denied', 'EACCES')), false);
});

test('a full disk becomes exit 4 naming the folder and the bytes needed; other errors pass unchanged', async () => {
  const full = await diskFullOr(coded('no space', 'ENOSPC'), '/mnt/out', 5 * 1024 * 1024, 'the bundle demo.tar');
  assert.ok(full instanceof DiskFullError);
  assert.equal(exitCodeOf(full), 4);
  assert.match((full as Error).message, /^disk full in \/mnt\/out: cannot write the bundle demo\.tar: 5\.0 MiB \(5242880 bytes\) needed/);
  const other = coded('denied', 'EACCES');
  assert.equal(await diskFullOr(other, '/mnt/out', 1, 'x'), other);
});

test('ensureFreeSpace refuses more than the disk has, with the numbers, and passes what fits', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-free-'));
  try {
    await ensureFreeSpace(dir, 1, 'a byte');
    await assert.rejects(ensureFreeSpace(dir, Number.MAX_SAFE_INTEGER, 'everything'), (err: DiskFullError) => {
      assert.match(err.message, new RegExp(`disk full in ${dir}: cannot write everything: .* needed, .* free`));
      return true;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('dropWhenDiskFull removes the partial file on a full disk and leaves it for a resume otherwise', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-partial-'));
  try {
    const temp = join(dir, 'b.tar.partial');
    writeFileSync(temp, 'x');
    await dropWhenDiskFull(coded('reset', 'ECONNRESET'), temp, 10);
    assert.equal(existsSync(temp), true);
    await assert.rejects(dropWhenDiskFull(coded('no space', 'ENOSPC'), temp, 10), /disk full in .*: cannot write b\.tar: 10 B \(10 bytes\) needed/);
    assert.equal(existsSync(temp), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('stalls are retried and described with --timeout', () => {
  setNetworkTimeoutSeconds(7);
  try {
    assert.equal(stallWords(), 'no progress for 7 s (--timeout)');
    assert.equal(describeNetworkFailure(coded('Body Timeout Error', 'UND_ERR_BODY_TIMEOUT')), 'no progress for 7 s (--timeout)');
    assert.equal(isRetryableNetworkError(new StallError('PUT blob')), true);
  } finally {
    setNetworkTimeoutSeconds(60);
  }
});

test('ProgressWatch fires when no chunk passes for its time, not while chunks flow', async () => {
  let stalled = 0;
  const watch = new ProgressWatch(150, () => stalled++);
  const source = new PassThrough();
  source.pipe(watch).resume();
  for (let i = 0; i < 5; i++) {
    source.write(Buffer.from('x'));
    await new Promise((r) => setTimeout(r, 60));
  }
  assert.equal(stalled, 0);
  await new Promise((r) => setTimeout(r, 250));
  assert.equal(stalled, 1);
  source.end();
  watch.stop();
});
