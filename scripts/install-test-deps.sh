#!/usr/bin/env bash
# Install the programs the integration tests run for real (Debian / Ubuntu).
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
)
# kubectl: Debian has no "kubectl" package. bookworm's kubernetes-client is kubectl 1.20
# (2021, kustomize v2, which lacks `patches:`), so it is not installed here. The GitOps
# tests check `kubectl kustomize` rendering when a kubectl with kustomize v4+ is on PATH
# and say so (a test diagnostic) when it is not; everything else they check regardless.

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
  have kubectl || echo "install-test-deps: note: kubectl not found; tests that need it will be skipped" >&2
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

# nginx and openssh-server also start system services (:80, :22) on a systemd machine; they are
# left running (stopping sshd could lock someone out). Tests run their own instances.

still=()
for cmd in "${missing_cmds[@]}"; do have "$cmd" || still+=("$cmd"); done
if [ "${#still[@]}" -gt 0 ]; then
  echo "install-test-deps: still missing after install: ${still[*]}" >&2
  exit 1
fi
echo "install-test-deps: installed ${pkgs[*]}"
