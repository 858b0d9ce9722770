import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError } from '../../../shared/cli/errors.ts';
import type { RegistryClient } from '../../../shared/registry/client.ts';
import { HttpTransport } from '../../../shared/registry/transport.ts';
import { readHelmRepositories, type HelmRepository } from './repositories.ts';

/**
 * What fetching charts needs from the packer, and the state one pack shares
 * between charts: a work folder that only airlock writes to, the HTTP
 * transport, registry clients (auth, mirrors, CA, plain HTTP as for images),
 * Helm's repositories.yaml, and the chart repository indexes already read.
 */
export interface ChartFetchOptions {
  /** Downloads and unpacked charts go under here (the caller creates and removes it). */
  workDir: string;
  /** The packer's transport (--ca-file, retries). */
  transport: HttpTransport;
  /** --ca-file: combined with a repository's own caFile from repositories.yaml. */
  caFile?: string;
  /** The packer's registry client for a registry ("host[:port]"), as for images. */
  registryClient: (registry: string) => RegistryClient;
  /** Helm's repositories.yaml entries; read from the usual place when not given. */
  repositories?: HelmRepository[];
  /** Warnings for the user (a chart repository without digests). */
  onLog?: (message: string) => void;
  /**
   * The git seam: check out `path` of `url` at `ref` into `into` and return the
   * chart folder and the commit it came from. Chart and manifest git sources
   * share one git fetcher; until it is passed in here, a git chart source is a
   * usage error.
   */
  fetchGitFolder?: (git: { url: string; ref?: string; path?: string }, into: string) => Promise<{ dir: string; commit: string }>;
}

export class ChartFetchContext {
  readonly repositories: HelmRepository[];
  /** Repository index (by normalized URL) -> its parsed entries, read once per pack. */
  readonly indexes = new Map<string, Promise<unknown>>();
  private readonly transports = new Map<string, HttpTransport>();
  private counter = 0;

  constructor(readonly options: ChartFetchOptions) {
    this.repositories = options.repositories ?? readHelmRepositories();
  }

  /** A fresh folder under the work folder. */
  async newDir(label: string): Promise<string> {
    this.counter += 1;
    const dir = join(this.options.workDir, 'charts', `${String(this.counter).padStart(4, '0')}-${label.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 60)}`);
    await mkdir(dir, { recursive: true });
    return dir;
  }

  /** The transport for a repository with its own CA file (repositories.yaml caFile), or the packer's. */
  async transportFor(repositoryCaFile: string | undefined): Promise<HttpTransport> {
    if (repositoryCaFile === undefined) return this.options.transport;
    let t = this.transports.get(repositoryCaFile);
    if (!t) {
      // One extra CA file per transport: --ca-file and the repository's, together.
      let pem: string;
      try {
        pem = await readFile(repositoryCaFile, 'utf8');
      } catch (err) {
        throw new UsageError(`cannot read the caFile ${repositoryCaFile} of Helm's repository config: ${(err as Error).message}`);
      }
      if (this.options.caFile !== undefined) pem = `${await readFile(this.options.caFile, 'utf8')}\n${pem}`;
      const file = join(this.options.workDir, 'charts', `ca-${this.transports.size}.pem`);
      await mkdir(join(file, '..'), { recursive: true });
      await writeFile(file, pem);
      t = new HttpTransport({ caFile: file });
      this.transports.set(repositoryCaFile, t);
    }
    return t;
  }

  async close(): Promise<void> {
    for (const t of this.transports.values()) await t.close();
    this.transports.clear();
  }
}
