#!/usr/bin/env bash
# Builds the bench's peers (DESIGN §4) from the Go module proxy into .tools/bin, pinned:
#
#   opa-envoy-plugin  github.com/open-policy-agent/opa-envoy-plugin@v1.15.2-envoy: the proxy does not
#                     serve its version list, so `go install …@latest` fails; `go mod download` the exact
#                     version, then `go build ./cmd/opa-envoy-plugin` inside the downloaded module.
#   ratelimit         github.com/envoyproxy/ratelimit/src/service_cmd at a pinned pseudo-version (the
#                     project tags no releases past v1.4.0; `go list -m …@latest` names the newest
#                     commit the proxy serves, which is what is pinned here).
#
#   bash scripts/build-peers.sh [opa] [ratelimit]     # both when none is named
#
# Each binary is skipped when it is present and its stamp (.tools/bin/<name>.version) names the
# pinned version. Cold, on 2 shared cores, the OPA build takes ~6 min and ratelimit ~3 min; with
# the Go module and build caches warm, seconds. Bounded by GO_INSTALL_TIMEOUT (default 900 s).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TOOLS_BIN="$ROOT/.tools/bin"
OPA_ENVOY_VERSION="${OPA_ENVOY_VERSION:-v1.15.2-envoy}"
RATELIMIT_VERSION="${RATELIMIT_VERSION:-v1.4.1-0.20260122083618-3fb702589d36}"
GO_INSTALL_TIMEOUT="${GO_INSTALL_TIMEOUT:-900}"
say() { printf 'build-peers: %s\n' "$*" >&2; }

GO="${GO:-}"
if [ -z "$GO" ]; then
  if command -v go >/dev/null 2>&1; then GO=go
  elif [ -x /usr/local/go/bin/go ]; then GO=/usr/local/go/bin/go
  else
    say "go is not installed: cannot build the peers (Go >= 1.25 from https://go.dev/dl)"
    exit 1
  fi
fi
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false

current() { # current <name> <version>: true when the binary and its stamp are there
  [ -x "$TOOLS_BIN/$1" ] && [ "$(cat "$TOOLS_BIN/$1.version" 2>/dev/null)" = "$2" ]
}

build_opa() {
  if current opa-envoy-plugin "$OPA_ENVOY_VERSION"; then
    say "opa-envoy-plugin ${OPA_ENVOY_VERSION}: present"
    return
  fi
  say "building github.com/open-policy-agent/opa-envoy-plugin@${OPA_ENVOY_VERSION} into .tools/bin (minutes when cold)"
  local dir
  dir=$(cd "${TMPDIR:-/tmp}" && timeout "$GO_INSTALL_TIMEOUT" "$GO" mod download -json "github.com/open-policy-agent/opa-envoy-plugin@${OPA_ENVOY_VERSION}" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
  if [ -z "$dir" ] || [ ! -d "$dir" ]; then
    say "go mod download of opa-envoy-plugin@${OPA_ENVOY_VERSION} gave no module directory"
    exit 1
  fi
  mkdir -p "$TOOLS_BIN"
  # The module cache is read-only: build from it, writing only the binary.
  (cd "$dir" && timeout "$GO_INSTALL_TIMEOUT" "$GO" build -trimpath -o "$TOOLS_BIN/opa-envoy-plugin.tmp" ./cmd/opa-envoy-plugin)
  mv "$TOOLS_BIN/opa-envoy-plugin.tmp" "$TOOLS_BIN/opa-envoy-plugin"
  printf '%s\n' "$OPA_ENVOY_VERSION" > "$TOOLS_BIN/opa-envoy-plugin.version"
}

build_ratelimit() {
  if current ratelimit "$RATELIMIT_VERSION"; then
    say "envoyproxy/ratelimit ${RATELIMIT_VERSION}: present"
    return
  fi
  say "building github.com/envoyproxy/ratelimit/src/service_cmd@${RATELIMIT_VERSION} into .tools/bin (minutes when cold)"
  local gobin="$TOOLS_BIN/.ratelimit-build"
  mkdir -p "$gobin"
  (cd "${TMPDIR:-/tmp}" && GOBIN="$gobin" timeout "$GO_INSTALL_TIMEOUT" "$GO" install -trimpath "github.com/envoyproxy/ratelimit/src/service_cmd@${RATELIMIT_VERSION}")
  mv "$gobin/service_cmd" "$TOOLS_BIN/ratelimit"
  rmdir "$gobin"
  printf '%s\n' "$RATELIMIT_VERSION" > "$TOOLS_BIN/ratelimit.version"
}

wanted=("$@")
[ "${#wanted[@]}" -eq 0 ] && wanted=(opa ratelimit)
for peer in "${wanted[@]}"; do
  case "$peer" in
    opa) build_opa ;;
    ratelimit) build_ratelimit ;;
    *) say "unknown peer ${peer}: opa or ratelimit"; exit 2 ;;
  esac
done
