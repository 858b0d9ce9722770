import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { finished } from 'node:stream/promises';
import { checkEntryPath } from '../../shared/bundle/format.ts';
import { VerificationError } from '../../shared/cli/errors.ts';

/**
 * `helm template` output, split into one file per template, at the template's
 * path in the chart: every document helm prints starts with
 *
 *   ---
 *   # Source: harness-delegate-ng/templates/deployment.yaml
 *
 * and goes to `<into>/<that path>` (subcharts: `harness/charts/platform/templates/...`).
 * A template that gives several documents (helm prints them apart, ordered by
 * kind) gets them all in one file, in helm's order, each with its `---` and
 * `# Source:` lines, so every file is valid multi-document YAML and the same
 * render gives the same files byte for byte. Documents before any `# Source:`
 * line (helm prints none) would go to NO_SOURCE_FILE. Read and written a line
 * at a time: the output is never held in memory whole.
 */
export interface SplitFile {
  /** Path under `into`: "harness-delegate-ng/templates/deployment.yaml" */
  rel: string;
  file: string;
  size: number;
  /** hex */
  sha256: string;
}

export const NO_SOURCE_FILE = 'helm-output.yaml';
const SOURCE_LINE = /^# Source: (.+?)\s*$/;
const SEPARATOR = /^---\s*$/;

export async function splitRendered(rendered: string, into: string, label: string): Promise<SplitFile[]> {
  const files = new Map<string, { file: string; hash: ReturnType<typeof createHash> }>();
  let current: { rel: string; out: WriteStream } | undefined;
  const lines = createInterface({ input: createReadStream(rendered, { encoding: 'utf8' }), crlfDelay: Infinity });

  const write = async (text: string) => {
    const entry = files.get(current!.rel)!;
    entry.hash.update(text);
    if (!current!.out.write(text)) await once(current!.out, 'drain');
  };
  const switchTo = async (rel: string) => {
    if (current?.rel === rel) return;
    if (current) {
      current.out.end();
      await finished(current.out);
    }
    const why = checkEntryPath(`manifests/${rel}`);
    if (why !== undefined) {
      throw new VerificationError(`chart ${label}: helm printed a template path airlock cannot store (${why}): ${JSON.stringify(rel)}`, {
        hint: 'template file names must be plain relative paths inside the chart',
      });
    }
    const known = files.get(rel);
    const file = known?.file ?? join(into, rel);
    if (!known) {
      await mkdir(dirname(file), { recursive: true });
      files.set(rel, { file, hash: createHash('sha256') });
    }
    current = { rel, out: createWriteStream(file, { flags: known ? 'a' : 'w' }) };
  };

  let pendingSeparator: string | undefined;
  try {
    for await (const line of lines) {
      if (pendingSeparator !== undefined) {
        const source = SOURCE_LINE.exec(line);
        if (source) await switchTo(source[1]!);
        else if (!current) await switchTo(NO_SOURCE_FILE);
        await write(`${pendingSeparator}\n`);
        pendingSeparator = undefined;
        if (SEPARATOR.test(line)) {
          pendingSeparator = line;
          continue;
        }
        await write(`${line}\n`);
        continue;
      }
      if (SEPARATOR.test(line)) {
        pendingSeparator = line;
        continue;
      }
      if (!current) {
        if (line.trim() === '') continue;
        await switchTo(NO_SOURCE_FILE);
      }
      await write(`${line}\n`);
    }
    // A last `---` with nothing after it starts no document: dropped.
  } finally {
    lines.close();
    if (current) {
      current.out.end();
      await finished(current.out);
    }
  }
  const out: SplitFile[] = [];
  for (const [rel, { file, hash }] of files) out.push({ rel, file, size: (await stat(file)).size, sha256: hash.digest('hex') });
  return out.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
}
