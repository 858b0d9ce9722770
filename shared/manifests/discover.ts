import { UsageError } from '../cli/errors.ts';
import { forEachYamlDocument, toJs } from '../yaml/bounded.ts';

/**
 * Container images named by Kubernetes manifests: the containers,
 * initContainers and ephemeralContainers of Pods and of every workload kind's
 * pod template. Strings elsewhere (ConfigMaps, annotations, comments) are not
 * images. Lists (kind: List, v1 "items") are walked.
 */
export interface FoundImage {
  image: string;
  /** "Deployment/ng-manager container app" */
  where: string;
}

const CONTAINER_LISTS = ['containers', 'initContainers', 'ephemeralContainers'] as const;

/** Where each workload kind keeps its pod spec. */
const POD_SPEC_PATH: Record<string, string[]> = {
  Pod: ['spec'],
  Deployment: ['spec', 'template', 'spec'],
  StatefulSet: ['spec', 'template', 'spec'],
  DaemonSet: ['spec', 'template', 'spec'],
  ReplicaSet: ['spec', 'template', 'spec'],
  ReplicationController: ['spec', 'template', 'spec'],
  Job: ['spec', 'template', 'spec'],
  PodTemplate: ['template', 'spec'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template', 'spec'],
};

/** Fetched manifests: YAML past the limits of ../yaml/bounded.ts is refused (exit 3), invalid YAML is exit 2. */
export function discoverImages(yamlText: string, file: string): FoundImage[] {
  const found: FoundImage[] = [];
  forEachYamlDocument(yamlText, file, 'source', (doc) => {
    if (doc.errors.length > 0) {
      throw new UsageError(`${file}: invalid YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
    }
    visit(toJs(doc, file, 'source'), file, found);
  });
  return found;
}

function visit(obj: unknown, file: string, found: FoundImage[]): void {
  if (!isObject(obj)) return;
  const kind = typeof obj.kind === 'string' ? obj.kind : '';
  if (kind.endsWith('List') && Array.isArray(obj.items)) {
    for (const item of obj.items) visit(item, file, found);
    return;
  }
  const path = POD_SPEC_PATH[kind];
  if (!path) return;
  let spec: unknown = obj;
  for (const key of path) spec = isObject(spec) ? spec[key] : undefined;
  if (!isObject(spec)) return;
  const name = isObject(obj.metadata) && typeof obj.metadata.name === 'string' ? obj.metadata.name : '?';
  for (const list of CONTAINER_LISTS) {
    const containers = spec[list];
    if (!Array.isArray(containers)) continue;
    for (const c of containers) {
      if (isObject(c) && typeof c.image === 'string' && c.image.trim() !== '') {
        found.push({ image: c.image.trim(), where: `${file}: ${kind}/${name} ${list} ${String(c.name ?? '?')}` });
      }
    }
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
