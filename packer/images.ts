import { readFile } from 'node:fs/promises';
import { UsageError } from '../shared/cli/errors.ts';
import { formatReference, parseReference, withDefaultTag, type ImageReference } from '../shared/oci/reference.ts';
import type { FoundImage } from '../shared/manifests/discover.ts';

/**
 * The images a bundle carries: the spec's explicit list, its image lists
 * (one reference a line, # comments), and what discovery found, normalized
 * (docker.io, library/, :latest) and deduplicated, each with where it came from.
 */
export interface WantedImage {
  reference: ImageReference;
  /** The canonical text: "docker.io/harness/ng-manager:1.0". */
  canonical: string;
  /** Every place that asked for it: "airlock.yaml:5", "images.txt:12", "deploy/a.yaml: Deployment/x ...". */
  from: string[];
}

export async function readImageList(file: string): Promise<{ text: string; where: string }[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`imageLists: cannot read ${file}: ${(err as Error).message}`, {
      hint: 'paths in imageLists are relative to the spec file',
    });
  }
  const out: { text: string; where: string }[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const t = line.replace(/#.*/, '').trim();
    if (t !== '') out.push({ text: t, where: `${file}:${i + 1}` });
  });
  return out;
}

export function mergeImages(sources: { text: string; where: string }[]): WantedImage[] {
  const byName = new Map<string, WantedImage>();
  for (const { text, where } of sources) {
    let reference: ImageReference;
    try {
      reference = withDefaultTag(parseReference(text));
    } catch (err) {
      throw new UsageError(`${where}: ${(err as Error).message}`);
    }
    const canonical = formatReference(reference);
    const seen = byName.get(canonical);
    if (seen) seen.from.push(where);
    else byName.set(canonical, { reference, canonical, from: [where] });
  }
  return [...byName.values()];
}

export function foundToSources(found: FoundImage[]): { text: string; where: string }[] {
  return found.map((f) => ({ text: f.image, where: f.where }));
}
