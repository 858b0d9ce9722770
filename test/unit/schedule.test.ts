import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { backgroundTimeout } from '../../shared/schedule.ts';

test('backgroundTimeout runs the callback once after the delay; a cancelled one never runs', async () => {
  const ran: string[] = [];
  backgroundTimeout(() => ran.push('kept'), 5);
  const cancel = backgroundTimeout(() => ran.push('cancelled'), 5);
  cancel();
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(ran, ['kept']);
  cancel();
});

test('a pending backgroundTimeout does not keep the process alive', async () => {
  const module = fileURLToPath(new URL('../../shared/schedule.ts', import.meta.url));
  const script = `const { backgroundTimeout } = await import(${JSON.stringify(module)}); backgroundTimeout(() => console.log('ran'), 60000);`;
  // Kept alive, it would run for 60 s: the 30 s timeout would kill it and fail the test.
  const stdout = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { timeout: 30_000 }, (err, out) => (err ? reject(err) : resolve(out))),
  );
  assert.equal(stdout, '', 'the callback never ran: the process ended first');
});
