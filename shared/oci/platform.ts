import { UsageError } from '../cli/errors.ts';
import type { Descriptor, Platform } from './descriptor.ts';

/**
 * Platforms ("linux/amd64", "linux/arm64/v8") and matching them the way
 * containerd normalizes them: architecture aliases, arm64's implied v8 and
 * arm's implied v7.
 */

export function parsePlatform(s: string): Platform {
  const parts = s.trim().split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[A-Za-z0-9_.-]+$/.test(p))) {
    throw new UsageError(`invalid platform ${JSON.stringify(s)}: expected os/architecture[/variant], e.g. linux/amd64`);
  }
  const [os, architecture, variant] = parts as [string, string, string | undefined];
  return variant ? { os, architecture, variant } : { os, architecture };
}

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

const ARCH_ALIASES: Record<string, { architecture: string; variant?: string }> = {
  'x86_64': { architecture: 'amd64' },
  'x86-64': { architecture: 'amd64' },
  aarch64: { architecture: 'arm64' },
  armhf: { architecture: 'arm', variant: 'v7' },
  armel: { architecture: 'arm', variant: 'v6' },
  i386: { architecture: '386' },
};

/** Lowercase os and arch, aliases resolved; arm64's "v8" is implied (empty), arm's default is v7. */
export function normalizePlatform(p: Platform): Platform {
  const os = p.os.toLowerCase();
  let architecture = p.architecture.toLowerCase();
  let variant = p.variant?.toLowerCase();
  const alias = ARCH_ALIASES[architecture];
  if (alias) {
    architecture = alias.architecture;
    variant = variant || alias.variant;
  }
  if (architecture === 'arm64' && (variant === 'v8' || variant === '8')) variant = undefined;
  if (architecture === 'arm' && !variant) variant = 'v7';
  return variant ? { os, architecture, variant } : { os, architecture };
}

/**
 * True when `candidate` is the wanted platform. A wanted platform without a
 * variant accepts any variant of its architecture; a candidate without a
 * platform never matches.
 */
export function platformMatches(wanted: Platform, candidate: Platform | undefined): boolean {
  if (!candidate) return false;
  const w = normalizePlatform(wanted);
  const c = normalizePlatform(candidate);
  if (w.os !== c.os || w.architecture !== c.architecture) return false;
  if (wanted.variant === undefined) return true;
  return (w.variant ?? '') === (c.variant ?? '');
}

export function matchesAny(wanted: Platform[], candidate: Platform | undefined): boolean {
  return wanted.some((w) => platformMatches(w, candidate));
}

/** A buildx attestation entry of an index (unknown/unknown, or annotated as one). */
export function isAttestationManifest(d: Descriptor): boolean {
  if (d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest') return true;
  return d.platform?.os === 'unknown' && d.platform?.architecture === 'unknown';
}
