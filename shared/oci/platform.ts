import { RemoteError, UsageError } from '../cli/errors.ts';
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
  const platform = variant ? { os, architecture, variant } : { os, architecture };
  checkKnownPlatform(s, platform);
  return platform;
}

/**
 * The operating systems and architectures images are built for: Go's
 * GOOS and GOARCH lists (what OCI image configs use), plus the variants
 * the OCI image index spec and containerd know.
 */
const KNOWN_OS = new Set(['aix', 'android', 'darwin', 'dragonfly', 'freebsd', 'hurd', 'illumos', 'ios', 'js', 'linux', 'nacl', 'netbsd', 'openbsd', 'plan9', 'solaris', 'wasip1', 'windows', 'zos']);
const KNOWN_ARCHITECTURES = new Set([
  '386', 'amd64', 'amd64p32', 'arm', 'armbe', 'arm64', 'arm64be', 'loong64', 'mips', 'mipsle', 'mips64', 'mips64le', 'mips64p32', 'mips64p32le',
  'ppc', 'ppc64', 'ppc64le', 'riscv', 'riscv64', 's390', 's390x', 'sparc', 'sparc64', 'wasm',
]);
const KNOWN_VARIANTS: Record<string, RegExp> = {
  arm: /^v[5-8]$/,
  arm64: /^v8(\.[0-9])?$|^v9(\.[0-5])?$|^8$/,
  amd64: /^v[1-4]$/,
  '386': /^(sse2|softfloat)$/,
  mips: /^(hardfloat|softfloat)$/,
  mipsle: /^(hardfloat|softfloat)$/,
  mips64: /^(hardfloat|softfloat)$/,
  mips64le: /^(hardfloat|softfloat)$/,
  ppc64: /^power(8|9|10)$/,
  ppc64le: /^power(8|9|10)$/,
  riscv64: /^rva2[03]u64$/,
};

/** An os, architecture or variant no image is built for is a typo: exit 2 before anything is fetched. */
function checkKnownPlatform(text: string, p: Platform): void {
  const { os, architecture } = normalizePlatform({ os: p.os, architecture: p.architecture });
  const variant = p.variant ?? normalizePlatform(p).variant;
  const hint = 'platforms are os/architecture[/variant] as Go names them, e.g. linux/amd64, linux/arm64, linux/arm/v7, windows/amd64';
  if (!KNOWN_OS.has(os)) throw new UsageError(`invalid platform ${JSON.stringify(text)}: unknown operating system ${JSON.stringify(p.os)}`, { hint });
  if (!KNOWN_ARCHITECTURES.has(architecture)) throw new UsageError(`invalid platform ${JSON.stringify(text)}: unknown architecture ${JSON.stringify(p.architecture)}`, { hint });
  if (p.variant !== undefined && !KNOWN_VARIANTS[architecture]?.test(variant!.toLowerCase())) {
    throw new UsageError(`invalid platform ${JSON.stringify(text)}: ${architecture} has no variant ${JSON.stringify(p.variant)}`, { hint });
  }
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

/**
 * An image that does not offer any of the wanted platforms (a single-platform
 * image built for another one, or an index without it): exit 4, since the
 * registry's content cannot give what was asked, naming what it offers.
 */
export function platformNotOffered(what: string, offered: readonly string[], wanted: readonly Platform[]): RemoteError {
  return new RemoteError(`${what} offers ${offered.join(', ') || 'no platform'}, not ${wanted.map(formatPlatform).join(' or ')}`, {
    hint: 'pack it for the platforms it has (--platform / platforms in the spec), use an image built for the wanted platform, or drop the image',
  });
}

/** Throws platformNotOffered unless a single-platform image's own platform (its config's) is one of the wanted ones. */
export function requireWantedPlatform(offered: Platform, wanted: readonly Platform[]): void {
  if (wanted.length > 0 && !matchesAny([...wanted], offered)) throw platformNotOffered('a single-platform image: it', [formatPlatform(offered)], wanted);
}
