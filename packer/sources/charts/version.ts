import semver from 'semver';
import { UsageError } from '../../../shared/cli/errors.ts';

/**
 * Chart versions and version constraints as Helm takes them (Masterminds/semver
 * v3), answered with the npm `semver` package:
 *
 *   - versions may carry a "v" and leave out the minor or patch ("v1.2" is 1.2.0);
 *   - constraints join comparators with "," or spaces (AND) and "||" (OR), and take
 *     "=", "!=", "<", ">", "<=", ">=", "~", "^", x-ranges (1.2.x, 1.x, *) and
 *     hyphen ranges (1.2 - 1.4);
 *   - a prerelease version matches only when the constraint itself names a prerelease;
 *   - the highest matching version wins.
 */

/** A version string as Helm reads it, or undefined when it is none. */
export function parseChartVersion(text: string): semver.SemVer | undefined {
  const m = /^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/.exec(text.trim());
  if (!m) return undefined;
  const full = `${m[1]}.${m[2] ?? '0'}.${m[3] ?? '0'}${m[4] ?? ''}${m[5] ?? ''}`;
  return semver.parse(full) ?? undefined;
}

export interface VersionConstraint {
  /** As written. */
  text: string;
  range: semver.Range;
  includePrerelease: boolean;
}

/** Parse a Helm constraint; a UsageError naming `what` when it is none. */
export function parseConstraint(text: string, what: string): VersionConstraint {
  const trimmed = text.trim();
  const written = trimmed === '' ? '*' : trimmed;
  // Masterminds: "," is AND, like a space. "!=" has no npm form: it becomes "<v || >v" per comparator set below.
  const sets = written.split('||').map((set) => toNpmSet(set.replace(/,/g, ' '), what, text));
  const expanded = sets.flat().join(' || ');
  const includePrerelease = /\d-[0-9A-Za-z]/.test(written);
  let range: semver.Range;
  try {
    range = new semver.Range(expanded, { includePrerelease, loose: true });
  } catch {
    throw invalid(text, what);
  }
  return { text, range, includePrerelease };
}

/**
 * One AND-set into npm comparator sets. A "!=v" comparator splits the set in
 * two ("<v" and ">v"), since npm ranges have no "not equal".
 */
function toNpmSet(set: string, what: string, text: string): string[] {
  // "> = 1.2" and ">= 1.2" are one comparator for Masterminds: glue operators to their versions.
  const tokens = set
    .replace(/(!=|>=|<=|=>|=<|>|<|=|~>|~|\^)\s+/g, '$1')
    .split(/\s+/)
    .filter(Boolean)
    .map((t) => t.replace(/^=>/, '>=').replace(/^=</, '<=').replace(/^~>/, '~'));
  let out: string[][] = [[]];
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t === '-') {
      // hyphen range: keep "a - b" together
      for (const o of out) o.push('-');
      continue;
    }
    if (t.startsWith('!=')) {
      const v = t.slice(2).replace(/^v/, '');
      if (parseChartVersion(v) === undefined) throw invalid(text, what);
      out = out.flatMap((o) => [
        [...o, `<${v}`],
        [...o, `>${v}`],
      ]);
      continue;
    }
    for (const o of out) o.push(t.replace(/^([<>=~^]*)v(\d)/, '$1$2'));
  }
  return out.map((o) => o.join(' '));
}

function invalid(text: string, what: string): UsageError {
  return new UsageError(`${what}: ${JSON.stringify(text)} is not a version or a version range`, {
    hint: 'write an exact version (1.0.32) or a range as Helm takes it: ">=1.2 <2", "^1.2", "~1.2", "1.2.x"',
  });
}

export function satisfies(version: semver.SemVer, constraint: VersionConstraint): boolean {
  if (version.prerelease.length > 0 && !constraint.includePrerelease) return false;
  return constraint.range.test(version);
}

/**
 * The highest of `versions` (strings as a repository lists them) that
 * satisfies the constraint; an exact string match wins outright, as in Helm.
 * Undefined when none does.
 */
export function highestMatch(versions: readonly string[], constraint: VersionConstraint): string | undefined {
  if (versions.includes(constraint.text.trim()) && parseChartVersion(constraint.text) !== undefined) return constraint.text.trim();
  let best: { text: string; version: semver.SemVer } | undefined;
  for (const text of versions) {
    const version = parseChartVersion(text);
    if (version === undefined || !satisfies(version, constraint)) continue;
    if (best === undefined || semver.compareBuild(version, best.version) > 0) best = { text, version };
  }
  return best?.text;
}

/** True when the text is one exact, complete version ("1.0.32", "v2.1.0-rc.1+b7"), not a range ("1.2" is 1.2.x). */
export function isExactVersion(text: string): boolean {
  return /^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/.test(text.trim());
}

/** Two version strings that name the same version ("v1.2.0" and "1.2.0"; build metadata must agree). */
export function sameVersion(a: string, b: string): boolean {
  if (a === b) return true;
  const va = parseChartVersion(a);
  const vb = parseChartVersion(b);
  return va !== undefined && vb !== undefined && va.compare(vb) === 0 && va.build.join('.') === vb.build.join('.');
}
