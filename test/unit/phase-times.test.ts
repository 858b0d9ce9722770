import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PhaseTimes } from '../../shared/cli/phase-times.ts';

test('PhaseTimes: each phase runs until the next starts, in order, seconds to the millisecond; a phase started twice adds up', () => {
  let now = 1000;
  const phases = new PhaseTimes(() => now);
  phases.record('startup', 250);
  phases.start('resolve');
  now += 1234.5678;
  phases.start('download');
  now += 10;
  phases.start('resolve');
  now += 1;
  const seconds = phases.finish();
  assert.deepEqual(Object.keys(seconds), ['startup', 'resolve', 'download']);
  assert.deepEqual(seconds, { startup: 0.75, resolve: 1.236, download: 0.01 });
  // finish() ends the running phase: later time counts nowhere.
  now += 5000;
  assert.deepEqual(phases.finish(), seconds);
});
