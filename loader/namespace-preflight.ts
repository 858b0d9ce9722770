import pLimit from 'p-limit';
import { RemoteError } from '../shared/cli/errors.ts';
import type { PushRefusal, RegistryClient } from '../shared/registry/client.ts';

/**
 * Before load writes anything: can each target repository be pushed to?
 * Registries refuse names they do not create. Harbor pushes only into a
 * project (the first path segment) that exists, and answers a push into a
 * missing one with 401 "authentication required" (its token service grants
 * nothing there: goharbor/harbor#890, #966). Quay creates a repository on
 * push, but only inside an organization that exists, and only when the token
 * was asked for push. GitLab takes group/project plus at most two more
 * levels. Each repository is probed with an upload opened under push scope
 * (RegistryClient.probePush): cancelled at once, or with keepSessions left
 * open for the repository's first blob, so that the probe costs the load no
 * request of its own. The refusals are then explained together: which namespace to create, or --map-depth when only
 * the deeper paths were refused.
 */
export interface PushProbe {
  /** The repository path in the registry (prefix included). */
  repository: string;
  refusal?: PushRefusal;
}

export interface PushAccessOptions {
  /** Probes at once. */
  jobs: number;
  /** The registry prefix (its segments are not foldable by --map-depth). */
  prefix: string;
  /** --map-depth, when given. */
  mapDepth?: number;
  /** Told after each repository probed (progress). */
  onProbed?: () => void;
  /** Leave each accepted probe's upload session open for the repository's first upload (the caller then ends with client.cancelKeptUploads()). */
  keepSessions?: boolean;
}

/** Probe every repository (each once); throw a RemoteError explaining the refusals, if any. */
export async function checkPushAccess(client: RegistryClient, repositories: readonly string[], options: PushAccessOptions): Promise<void> {
  const limit = pLimit(Math.max(1, options.jobs));
  const unique = [...new Set(repositories)].sort();
  const probes = await Promise.all(
    unique.map((repository) =>
      limit(async (): Promise<PushProbe> => {
        const refusal = await client.probePush(repository, { keep: options.keepSessions === true });
        options.onProbed?.();
        return { repository, refusal };
      }),
    ),
  );
  const error = explainRefusals(probes, { ...options, display: (r) => client.display(r) });
  if (error) throw error;
}

/** What the hints need to know of the names: the prefix and --map-depth. */
type Naming = Pick<PushAccessOptions, 'prefix' | 'mapDepth'>;

const segments = (path: string) => (path === '' ? 0 : path.split('/').length);

/** What the registry's refusals mean, as one error to act on; undefined when nothing was refused. */
export function explainRefusals(probes: readonly PushProbe[], options: Naming & { display: (repository: string) => string }): RemoteError | undefined {
  const refused = probes.filter((p) => p.refusal !== undefined);
  if (refused.length === 0) return undefined;
  const lines = refused.slice(0, 20).map((p) => `  ${options.display(p.repository)}: HTTP ${p.refusal!.status}${p.refusal!.detail ? ` ${p.refusal!.detail}` : ''}`);
  if (refused.length > 20) lines.push(`  ... and ${refused.length - 20} more`);
  const message = `the registry refuses pushes to ${refused.length} of ${probes.length} repositories; nothing was written:\n${lines.join('\n')}`;
  return new RemoteError(message, { hint: hintFor(probes, refused, options) });
}

function hintFor(probes: readonly PushProbe[], refused: readonly PushProbe[], options: Naming): string {
  if (refused.every((p) => p.refusal!.status === 405)) {
    return 'the registry refuses writes (read-only or maintenance mode); ask its operator to allow the loader identity';
  }
  const depth = depthLimit(probes, refused);
  if (depth !== undefined) return depthHint(depth, options);
  if (refused.every((p) => p.refusal!.status === 404)) {
    return 'the registry does not create repositories on push (ECR answers NAME_UNKNOWN): create each repository listed first, or allow creation on push (an ECR repository creation template)';
  }
  const hints: string[] = [];
  if (refused.length === probes.length && refused.every((p) => p.refusal!.status === 401)) {
    hints.push('if the credentials are wrong: check --registry-username / --registry-password-env or ~/.docker/config.json');
  }
  const missing = missingNamespaces(probes);
  if (missing.length > 0) {
    hints.push(
      `create the namespace${missing.length === 1 ? '' : 's'} ${missing.join(', ')} in the registry (a Harbor project, a Quay organization, a GitLab group and project) and give the loader's account push access there`,
    );
  }
  if (refused.some((p) => !missing.includes(namespaceOf(p.repository)))) hints.push("check that the loader's account may push to the repositories listed");
  hints.push('or load under a --registry prefix that exists (HOST/PROJECT)');
  if (refused.some((p) => segments(p.repository) > 2 + segments(options.prefix))) hints.push('a registry that limits the path depth also takes --map-depth N');
  return hints.join('; ');
}

function depthHint(depth: number, options: Naming): string {
  const n = depth - segments(options.prefix);
  const fold =
    n >= 1 && n !== options.mapDepth
      ? `pass --map-depth ${n} (keeps the first ${n - 1} segment${n - 1 === 1 ? '' : 's'} under the prefix and joins the rest with "-"; GitLab takes group/project plus two more levels)`
      : 'give a shorter --registry prefix';
  return `only repository paths of more than ${depth} segments were refused: the registry limits the depth; ${fold}`;
}

/** The first path segment: Harbor's project, Quay's organization, GitLab's top-level group. */
const namespaceOf = (repository: string) => repository.split('/')[0]!;

/** Namespaces where every repository was refused: most likely not there at all. */
function missingNamespaces(probes: readonly PushProbe[]): string[] {
  const accepted = new Set(probes.filter((p) => !p.refusal).map((p) => namespaceOf(p.repository)));
  return [...new Set(probes.filter((p) => p.refusal).map((p) => namespaceOf(p.repository)))].filter((ns) => !accepted.has(ns));
}

/**
 * The depth the registry takes, when the refusals are exactly the deeper
 * paths: every refused repository is deeper than every accepted one, and the
 * refusals are ones a depth limit gives (401, 403, 400 NAME_INVALID).
 */
function depthLimit(probes: readonly PushProbe[], refused: readonly PushProbe[]): number | undefined {
  const accepted = probes.filter((p) => p.refusal === undefined);
  if (accepted.length === 0) return undefined;
  if (!refused.every((p) => [400, 401, 403].includes(p.refusal!.status))) return undefined;
  const deepestAccepted = Math.max(...accepted.map((p) => segments(p.repository)));
  const shallowestRefused = Math.min(...refused.map((p) => segments(p.repository)));
  return shallowestRefused > deepestAccepted ? deepestAccepted : undefined;
}
