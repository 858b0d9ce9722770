/**
 * The floor for npm run bench (scripts/bench.ts calls it): runs scripts/floor/floor.mjs,
 * a minimal registry client with no airlock code, over an extracted bundle's OCI
 * layout, so airlock's pack and load can be printed as a ratio of what the registry
 * itself allows (pull: every manifest and blob GET; push: every blob once, mounted
 * into the other repositories, then every manifest; --jobs at a time, keep-alive).
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);
const FLOOR = join(import.meta.dirname, 'floor', 'floor.mjs');

export interface FloorRun {
  /** Wall time of the process, start-up included (as airlock's times are). */
  seconds: number;
  requests: number;
  bytes: number;
}

/** Run the floor client once: `pull` from a registry holding the layout's images, or `push` them into an empty one. */
export async function floor(mode: 'pull' | 'push', layout: string, registryUrl: string, jobs: number): Promise<FloorRun> {
  const t = performance.now();
  const { stdout } = await exec(process.execPath, [FLOOR, mode, '--layout', layout, '--registry', registryUrl, '--jobs', String(jobs)], { maxBuffer: 1 << 20 });
  const seconds = (performance.now() - t) / 1000;
  const { requests, bytes } = JSON.parse(stdout) as { requests: number; bytes: number };
  return { seconds, requests, bytes };
}
