#!/usr/bin/env bash
# Builds the real Kubernetes peers the tests in test/kubernetes/ run: kube-apiserver and etcd,
# from the Go module scripts/k8s-peers/ (k8s.io/kubernetes at one release, its staging modules
# replaced by the same release; etcd's server from the release Kubernetes itself pins).
#
# The binaries land in a cache outside the clone, keyed by the module's go.mod and go.sum, and
# are reused while present: CI runs on the developer's machine, so a second run costs nothing;
# a fresh machine builds them once. Measured (2026-12-03, Go 1.26, 2 cores, empty build cache,
# modules already downloaded): 10.2 CPU-minutes for both (user 511 s + sys 100 s), peak RSS
# 1.8 GB (the link); 48 min of wall time on a machine shared at load average ~17, so about
# 5-6 min on two idle cores. Downloading the modules adds well under a minute.
#
#   scripts/k8s-peers.sh          build if missing, print the bin directory
#   HEXMESH_K8S_CACHE=/dir ...    cache root (default /var/cache/hexmesh-k8s)
#
# test/support/kube-apiserver.ts finds the binaries through the same key (HEXMESH_K8S_BIN
# overrides both).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
module="$here/k8s-peers"

release="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2 }' "$module/go.mod")"
key="$(cat "$module/go.mod" "$module/go.sum" | sha256sum | cut -c1-12)"
cache="${HEXMESH_K8S_CACHE:-/var/cache/hexmesh-k8s}"
bin="$cache/$release-$key/bin"

if [ -x "$bin/kube-apiserver" ] && [ -x "$bin/etcd" ]; then
  echo "k8s peers: reusing $bin" >&2
  echo "$bin"
  exit 0
fi

# The Go toolchain's usual home, for shells whose PATH does not name it.
[ -x /usr/local/go/bin/go ] && PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || {
  echo "k8s peers: the go command is missing (Go 1.26 builds kube-apiserver and etcd)" >&2
  exit 1
}

mkdir -p "$bin.partial"
start=$(date +%s)
echo "k8s peers: building kube-apiserver $release and etcd into $bin" >&2
(
  cd "$module"
  export GOFLAGS="-trimpath" CGO_ENABLED=0
  nice -n 10 go build -ldflags="-s -w" -o "$bin.partial/etcd" go.etcd.io/etcd/server/v3
  nice -n 10 go build -ldflags="-s -w" -o "$bin.partial/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
)
rm -rf "$bin"
mv "$bin.partial" "$bin"
echo "k8s peers: built in $(($(date +%s) - start)) s" >&2
echo "$bin"
