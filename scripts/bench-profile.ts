/**
 * BENCH_PROFILE=1 npm run bench: once, on the Harness shape, pack and load run
 * under `node --cpu-prof` from an unminified one-file build (readable names,
 * module comments), each profile summarized by scripts/profile-summary.ts; the
 * minified build is put back afterwards. The .cpuprofile files are kept under
 * .tmp/profile/ (open them in Chrome DevTools or speedscope).
 */
import { execFile } from 'node:child_process';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startRegistry } from '../test/services/registry.ts';
import { formatProfileSummary, summarizeProfile } from './profile-summary.ts';

const exec = promisify(execFile);

export interface ProfileOptions {
  root: string;
  dir: string;
  /** pack's arguments without -o. */
  packArgs: string[];
  /** load's arguments after the bundle, without --registry. */
  loadArgs: string[];
  env: NodeJS.ProcessEnv;
  say: (line: string) => void;
}

async function profiled(o: ProfileOptions, name: string, args: string[]): Promise<void> {
  const out = join(o.root, '.tmp', 'profile', name);
  await rm(out, { recursive: true, force: true });
  await mkdir(out, { recursive: true });
  const t = performance.now();
  await exec(process.execPath, ['--cpu-prof', '--cpu-prof-dir', out, join(o.root, 'dist', 'airlock.mjs'), ...args], { cwd: o.root, env: o.env, maxBuffer: 1 << 26 });
  const seconds = (performance.now() - t) / 1000;
  // One profile per thread that ran JavaScript (the main thread, and any hashing workers).
  for (const file of (await readdir(out)).filter((f) => f.endsWith('.cpuprofile')).sort()) {
    for (const line of formatProfileSummary(`${name} (${seconds.toFixed(2)} s wall) ${join('.tmp', 'profile', name, file)}`, summarizeProfile(join(out, file)))) o.say(line);
  }
}

export async function profilePackAndLoad(o: ProfileOptions): Promise<void> {
  o.say('\nprofile (node --cpu-prof, unminified one-file build, once):');
  await exec('npm', ['run', '-s', 'build'], { cwd: o.root, env: { ...process.env, AIRLOCK_BUILD_MINIFY: '0' } });
  const bundle = join(o.dir, 'profiled.tar');
  const enclave = await startRegistry();
  try {
    await profiled(o, 'pack', [...o.packArgs, '-o', bundle]);
    await profiled(o, 'load', ['load', bundle, ...o.loadArgs, '--registry', enclave.host]);
  } finally {
    await enclave.stop();
    await rm(bundle, { force: true });
    await exec('npm', ['run', '-s', 'build'], { cwd: o.root });
  }
}
