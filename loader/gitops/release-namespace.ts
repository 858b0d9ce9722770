import type { BundleChart } from '../../shared/bundle/format.ts';

/**
 * The kustomization of a `gitops: rendered` chart's folder in the base,
 * base/<releaseName>/kustomization.yaml: its rendered files as resources,
 * and the release's namespace set on every resource whose template set none.
 *
 * That is what `helm install --namespace NS` does with the same render: a
 * resource keeps the namespace its template wrote (`{{ .Release.Namespace }}`,
 * or another one on purpose), the rest are created in NS. Without this, the
 * resources of a chart whose templates name no namespace would land in
 * whatever namespace the tool applying the base defaults to. kustomize's
 * NamespaceTransformer with `unsetOnly` does exactly that (cluster-scoped
 * kinds kustomize knows are left alone), and `setRoleBindingSubjects: none`
 * leaves RoleBinding subjects as rendered, as Helm does. The vendor's files
 * stay byte for byte as rendered.
 */
export function releaseKustomization(c: BundleChart, resources: readonly string[], bundle: { name: string; version: string }): Buffer {
  const lines = [
    `# Written by airlock load: ${bundle.name} ${bundle.version}, chart ${c.name} ${c.version} rendered as release ${c.releaseName}.`,
    `# Resources whose template names no namespace go to ${c.namespace}, as with helm install --namespace ${c.namespace}.`,
    'apiVersion: kustomize.config.k8s.io/v1beta1',
    'kind: Kustomization',
    'resources:',
    ...resources.map((r) => `  - ${JSON.stringify(r)}`),
    'transformers:',
    '  - |-',
    '    apiVersion: builtin',
    '    kind: NamespaceTransformer',
    '    metadata:',
    '      name: release-namespace',
    `      namespace: ${JSON.stringify(c.namespace)}`,
    '    unsetOnly: true',
    '    setRoleBindingSubjects: none',
  ];
  return Buffer.from(lines.join('\n') + '\n');
}
