import type { ChartChange, ImageVersion, ReleaseChanges } from './releaseChanges.ts';

/**
 * What a review says about a promotion: a title, "airlock: promote NAME
 * VERSION to ENV", and a description listing what the environment receives
 * (images, charts and vendor files added, changed, removed; the bundle's
 * creation time and signer). The same text is the merge commit's message of
 * a direct promote. Push options cannot hold line breaks: pushOptionText
 * makes the one-line forms the review styles send.
 */
export interface ReviewText {
  title: string;
  /** Several lines (Markdown lists, which GitLab and Gitea render). */
  description: string;
}

export interface Promotion {
  name: string;
  version: string;
  from: string;
  to: string;
}

/** Vendor file names listed per kind (added, changed, removed); the rest are counted. */
export const VENDOR_NAMES_LISTED = 20;
/** Image lines listed per kind; Harness has about 200, so all of them fit. */
export const IMAGES_LISTED = 500;

export function reviewText(p: Promotion, changes: ReleaseChanges, path: string): ReviewText {
  const lines: string[] = [];
  const was = changes.from ? `${changes.from.name} ${changes.from.version}` : 'nothing yet (a new environment)';
  lines.push(`Promotes ${p.name} ${p.version} from ${p.from} to ${p.to}; ${p.to} has ${was}.`);
  lines.push(`Bundle created ${changes.to.created || 'at an unrecorded time'}.`);
  lines.push(
    changes.to.signer
      ? `Bundle signature checked at load with the key ${changes.to.signer} (SHA-256 of the public key's DER).`
      : 'Signer key: not recorded (loaded by an older airlock).',
  );

  const { images, charts, vendorFiles } = changes;
  lines.push('', `Images: ${images.added.length} added, ${images.removed.length} removed, ${images.changed.length} changed.`);
  listed(lines, images.changed, IMAGES_LISTED, (i) => `changed ${i.name}: ${image(i.old)} -> ${image(i.new)}`);
  listed(lines, images.added, IMAGES_LISTED, (i) => `added ${i.name}: ${image(i.new)}`);
  listed(lines, images.removed, IMAGES_LISTED, (i) => `removed ${i.name}: ${image(i.old)}`);

  lines.push('', `Charts: ${charts.added.length} added, ${charts.removed.length} removed, ${charts.changed.length} changed.`);
  for (const c of charts.changed) lines.push(`- changed ${chartName(c)}: ${chart(c.old)} -> ${chart(c.new)}`);
  for (const c of charts.added) lines.push(`- added ${chartName(c)}: ${chart(c.new)}`);
  for (const c of charts.removed) lines.push(`- removed ${chartName(c)}: ${chart(c.old)}`);

  lines.push('', `Vendor files under ${path}/base: ${vendorFiles.added.length} added, ${vendorFiles.changed.length} changed, ${vendorFiles.removed.length} removed.`);
  listed(lines, vendorFiles.added, VENDOR_NAMES_LISTED, (f) => `added ${f}`);
  listed(lines, vendorFiles.changed, VENDOR_NAMES_LISTED, (f) => `changed ${f}`);
  listed(lines, vendorFiles.removed, VENDOR_NAMES_LISTED, (f) => `removed ${f}`);
  return { title: `airlock: promote ${p.name} ${p.version} to ${p.to}`, description: lines.join('\n') };
}

/** The merge commit's message: the title, a blank line, the description. */
export function commitMessage(text: ReviewText): string {
  return `${text.title}\n\n${text.description}\n`;
}

/** The first 12 hex digits of a digest, which is what reviewers compare. */
export function shortDigest(digest: string): string {
  return digest.replace(/^(sha256:[0-9a-f]{12})[0-9a-f]*$/, '$1');
}

function image(v: ImageVersion | undefined): string {
  return v ? `${v.tag ?? ''}@${shortDigest(v.digest)}` : '?';
}

function chart(v: ChartChange['old']): string {
  return v ? `${v.version}@${shortDigest(v.digest)}` : '?';
}

function chartName(c: ChartChange): string {
  return c.name === c.releaseName ? c.name : `${c.name} (release ${c.releaseName})`;
}

function listed<T>(lines: string[], items: readonly T[], limit: number, line: (t: T) => string): void {
  for (const t of items.slice(0, limit)) lines.push(`- ${line(t)}`);
  if (items.length > limit) lines.push(`- ... and ${items.length - limit} more`);
}

/** git's pkt-line limit is 65516 bytes for the whole option; the rest is left for the option's name. */
export const PUSH_OPTION_TEXT_BYTES = 60_000;

/**
 * The description as one push option value:
 * - literal: line breaks written as the two characters "\n", which GitLab
 *   (15.0 and later) turns back into line breaks in merge_request.description;
 * - one-line: lines joined with " | " (Gitea, Forgejo and Gerrit keep the text as sent).
 * Cut at PUSH_OPTION_TEXT_BYTES with a note.
 */
export function pushOptionText(description: string, style: 'literal' | 'one-line'): string {
  const text = style === 'literal' ? description.replace(/\r?\n/g, '\\n') : description.split(/\r?\n/).filter((l) => l.trim() !== '').join(' | ');
  if (Buffer.byteLength(text) <= PUSH_OPTION_TEXT_BYTES) return text;
  const note = ' ... (cut: the full text is the commit message)';
  let cut = Buffer.from(text).subarray(0, PUSH_OPTION_TEXT_BYTES - note.length).toString('utf8');
  cut = cut.replace(/\uFFFD$/, '').replace(/\\$/, '');
  return cut + note;
}
