#!/usr/bin/env bash
# Builds the real `helm` that test/deploy/helm-chart.test.ts renders and lints the chart
# (deploy/helm/hexmesh) with: helm.sh/helm/v4 at one release, `go install`ed from the Go
# module proxy (helm is in no Debian package). Cached outside the clone like the Kubernetes
# peers (scripts/k8s-peers.sh) and reused while present.
#
#   scripts/helm-peer.sh          build if missing, print the binary's path
#   HEXMESH_K8S_CACHE=/dir ...    cache root (default /var/cache/hexmesh-k8s)
#
# The test finds the binary at the same path (HEXMESH_HELM overrides).
set -euo pipefail
version=v4.3.2
cache="${HEXMESH_K8S_CACHE:-/var/cache/hexmesh-k8s}"
dir="$cache/helm-$version"

if [ -x "$dir/helm" ]; then
  echo "helm: reusing $dir/helm" >&2
  echo "$dir/helm"
  exit 0
fi

[ -x /usr/local/go/bin/go ] && PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || {
  echo "helm: the go command is missing (Go 1.26 builds helm $version)" >&2
  exit 1
}

start=$(date +%s)
echo "helm: building helm $version into $dir" >&2
rm -rf "$dir.partial"
mkdir -p "$dir.partial"
GOFLAGS="-trimpath" CGO_ENABLED=0 GOBIN="$dir.partial" nice -n 10 \
  go install -ldflags="-s -w" "helm.sh/helm/v4/cmd/helm@$version"
rm -rf "$dir"
mv "$dir.partial" "$dir"
echo "helm: built in $(($(date +%s) - start)) s" >&2
echo "$dir/helm"
