import { UsageError } from '../cli/errors.ts';

/**
 * Image references, parsed and normalized as Docker's distribution/reference
 * does (normalize.go): docker.io by default, `library/` for one-component
 * Docker Hub names, index.docker.io folded into docker.io, tag and digest kept
 * together.
 */
export interface ImageReference {
  /** "docker.io", "127.0.0.1:5000", "[::1]:5000", "localhost" */
  registry: string;
  /** "library/nginx", "harness/ng-manager" */
  repository: string;
  tag?: string;
  digest?: string;
}

export const DOCKER_HUB = 'docker.io';
const DOCKER_HUB_API = 'registry-1.docker.io';

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;
const NAME_MAX = 255;

export function parseReference(input: string): ImageReference {
  const fail = (why: string): never => {
    throw new UsageError(`invalid image reference ${JSON.stringify(input)}: ${why}`);
  };
  const s = input.trim();
  if (s === '') fail('empty');
  if (/^[a-f0-9]{64}$/.test(s)) fail('cannot specify 64-byte hexadecimal strings');

  let rest = s;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) fail(`invalid digest ${JSON.stringify(digest)}`);
    const [alg, hex] = digest.split(':') as [string, string];
    if (alg === 'sha256' && !/^[a-f0-9]{64}$/.test(hex)) fail('a sha256 digest has 64 lowercase hex characters');
    if (alg === 'sha512' && !/^[a-f0-9]{128}$/.test(hex)) fail('a sha512 digest has 128 lowercase hex characters');
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) fail(`invalid tag ${JSON.stringify(tag)}`);
  }
  if (rest === '') fail('no repository name');

  let registry = DOCKER_HUB;
  let path = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (/[.:]/.test(first) || first === 'localhost' || first.toLowerCase() !== first) {
      registry = first;
      path = rest.slice(slash + 1);
    }
  }
  if (registry !== DOCKER_HUB) checkDomain(registry, fail);
  if (registry === 'index.docker.io') registry = DOCKER_HUB;
  if (registry === DOCKER_HUB && !path.includes('/')) path = `library/${path}`;

  const components = path.split('/');
  for (const c of components) {
    if (c === '') fail('empty path component (leading, trailing or double slash)');
    if (c.toLowerCase() !== c && PATH_COMPONENT.test(c.toLowerCase())) fail('repository name must be lowercase');
    if (!PATH_COMPONENT.test(c)) fail(`invalid path component ${JSON.stringify(c)}`);
  }
  if (registry.length + 1 + path.length > NAME_MAX) fail(`repository name longer than ${NAME_MAX} characters`);
  return { registry, repository: path, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

function checkDomain(domain: string, fail: (why: string) => never): void {
  let host = domain;
  let port: string | undefined;
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    if (end < 0) fail(`invalid registry ${JSON.stringify(domain)}`);
    const ip = host.slice(1, end);
    if (!/^[0-9a-fA-F:.]+$/.test(ip)) fail(`invalid IPv6 registry ${JSON.stringify(domain)}`);
    const after = host.slice(end + 1);
    if (after !== '' && !/^:\d+$/.test(after)) fail(`invalid registry port in ${JSON.stringify(domain)}`);
    return;
  }
  const c = host.lastIndexOf(':');
  if (c >= 0) {
    port = host.slice(c + 1);
    host = host.slice(0, c);
    if (!/^\d+$/.test(port)) fail(`invalid registry port in ${JSON.stringify(domain)}`);
  }
  if (!host.split('.').every((p) => DOMAIN_COMPONENT.test(p))) fail(`invalid registry ${JSON.stringify(domain)}`);
}

export function formatReference(ref: ImageReference): string {
  return `${ref.registry}/${referenceWithoutHost(ref)}`;
}

/** "harness/ng-manager:1.0" or "library/nginx@sha256:..." */
export function referenceWithoutHost(ref: ImageReference): string {
  return `${ref.repository}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
}

/** The tag "latest" when a reference has neither tag nor digest, as Docker pulls. */
export function withDefaultTag(ref: ImageReference): ImageReference {
  return ref.tag === undefined && ref.digest === undefined ? { ...ref, tag: 'latest' } : ref;
}

/** The host that serves a registry's API: Docker Hub's is not docker.io. */
export function apiHost(registry: string): string {
  return registry === DOCKER_HUB ? DOCKER_HUB_API : registry;
}
