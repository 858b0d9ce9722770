import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { TestCA } from './ca.ts';
import { startStaticServer, type NginxService } from './nginx.ts';

/**
 * An HTTP(S) Helm chart repository as `helm repo index` lays one out: the
 * chart archives and an `index.yaml` listing each with its sha256 digest and
 * a URL relative to the repository, served by nginx (HTTPS with a certificate
 * from `tls`, so clients must be given that CA).
 */
export interface ChartInRepository {
  /** The chart archive (.tgz), copied into the repository under its own file name. */
  archive: string;
  name: string;
  version: string;
}

export interface ChartRepository {
  /** The repository URL a spec's `repo:` names: https://127.0.0.1:PORT/charts */
  url: string;
  server: NginxService;
  stop(): Promise<void>;
}

/** Start nginx serving `dir` (created) with the charts and their index under /charts. */
export async function startChartRepository(opts: { dir: string; charts: ChartInRepository[]; tls?: TestCA }): Promise<ChartRepository> {
  const folder = join(opts.dir, 'charts');
  await mkdir(folder, { recursive: true });
  const entries = new Map<string, string[]>();
  for (const c of opts.charts) {
    const bytes = await readFile(c.archive);
    const file = basename(c.archive);
    await writeFile(join(folder, file), bytes);
    const entry = `  - name: ${c.name}\n    version: ${c.version}\n    apiVersion: v2\n    digest: ${createHash('sha256').update(bytes).digest('hex')}\n    urls: [${file}]\n`;
    entries.set(c.name, [...(entries.get(c.name) ?? []), entry]);
  }
  const index = ['apiVersion: v1', 'entries:', ...[...entries].map(([name, list]) => `  ${name}:\n${list.join('')}`.trimEnd()), 'generated: "2026-01-01T00:00:00Z"', ''].join('\n');
  await writeFile(join(folder, 'index.yaml'), index);
  const server = await startStaticServer({ root: opts.dir, ...(opts.tls ? { tls: opts.tls } : {}) });
  return { url: `${server.url}/charts`, server, stop: () => server.stop() };
}
