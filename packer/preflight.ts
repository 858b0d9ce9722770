import type { RegistryOptions } from '../shared/registry/client.ts';
import { gitEndpoint, transferEndpoint, type PreflightEndpoint } from '../shared/net/preflight.ts';
import type { ImageReference } from '../shared/oci/reference.ts';
import type { BundleSpec } from './spec.ts';

/**
 * What pack talks to, as preflight endpoints (shared/net/preflight.ts): the
 * spec's manifest sources (URLs, git, S3) and chart sources (repositories,
 * oci:// registries, git), checked before anything is fetched; then the
 * registries (or their mirrors) of every image, once the image list is
 * complete and checked (imageRegistryEndpoints), before any is resolved.
 */
export interface PackEndpointOptions {
  registry: Pick<RegistryOptions, 'mirrors' | 'plainHttp' | 'credentials'>;
  git: { username?: string; passwordEnv?: string; sshKey?: string; knownHosts?: string };
  s3Endpoint?: string;
}

export function specEndpoints(spec: BundleSpec, options: PackEndpointOptions): PreflightEndpoint[] {
  const endpoints: PreflightEndpoint[] = [];
  for (const [i, m] of spec.manifests.entries()) {
    if (m.kind === 'url') endpoints.push({ kind: 'http', label: `manifests[${i}].url ${origin(m.url)}`, url: m.url });
    else if (m.kind === 'git') endpoints.push(gitEndpoint(`manifests[${i}].git`, { url: m.url, ...options.git }));
    else if (m.kind === 's3') {
      const e = transferEndpoint(m.url, { s3Endpoint: options.s3Endpoint });
      if (e) endpoints.push({ ...e, label: `manifests[${i}].s3: ${e.label}` });
    }
  }
  for (const chart of spec.charts) {
    const source = chart.source;
    if (source.kind === 'repo') endpoints.push({ kind: 'http', label: `chart repository ${origin(source.repo)} (${chart.where})`, url: source.repo });
    else if (source.kind === 'oci') {
      const registry = source.oci.slice('oci://'.length).split('/')[0]!;
      endpoints.push(registryEndpoint(registry, options.registry, `chart registry ${registry} (${chart.where})`));
    } else if (source.kind === 'git') endpoints.push(gitEndpoint(`chart git (${chart.where})`, { url: source.git.url, ...options.git }));
  }
  return endpoints;
}

/** One endpoint per source registry of these images (its mirror, when --registry-mirror names one). */
export function imageRegistryEndpoints(references: readonly ImageReference[], registry: PackEndpointOptions['registry']): PreflightEndpoint[] {
  const registries = [...new Set(references.map((r) => r.registry))];
  return registries.map((r) => registryEndpoint(r, registry));
}

function registryEndpoint(registry: string, options: PackEndpointOptions['registry'], label?: string): PreflightEndpoint {
  const mirror = options.mirrors?.[registry];
  return {
    kind: 'registry',
    label: label ?? (mirror ? `registry mirror ${origin(mirror)} (for ${registry})` : `source registry ${registry}`),
    registry,
    options,
  };
}

function origin(url: string): string {
  return URL.canParse(url) ? new URL(url).origin : url;
}
