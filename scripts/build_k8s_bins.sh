#!/usr/bin/env bash
# Builds the upstream Kubernetes and etcd binaries the local cluster needs, from their Go modules
# (tools/k8s, tools/etcd), into a cache outside the repo keyed by version. Does nothing when the
# cache already holds them. None of these binaries are ours; we only run them.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
K8S_VERSION=v1.36.3
ETCD_VERSION=v3.6.16
CACHE=${NEONVM_CACHE:-/var/cache/neonvm-ts}
OUT="$CACHE/bin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION"
export PATH=/usr/local/go/bin:$PATH
export GOFLAGS=-mod=mod
export CGO_ENABLED=0

mkdir -p "$CACHE/bin"
# One build at a time: a second caller waits for the first, then finds the binaries cached.
exec 9>"$CACHE/bin/.build.lock"
flock 9

progress() { printf '{"ts":"%s","level":"info","logger":"build-k8s-bins","msg":"%s"%s}\n' "$(date -u +%FT%T.%3NZ)" "$1" "${2:-}"; }

want=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet etcd)
missing=0
for b in "${want[@]}"; do [ -x "$OUT/$b" ] || missing=1; done
if [ "$missing" = 0 ]; then
  progress "binaries cached" ",\"dir\":\"$OUT\""
  echo "$OUT"
  exit 0
fi
mkdir -p "$OUT.tmp"

V=k8s.io/component-base/version; C=k8s.io/client-go/pkg/version
minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
LDF="-s -w"
for p in $V $C; do
  LDF="$LDF -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done

progress "building etcd" ",\"version\":\"$ETCD_VERSION\""
start=$(date +%s)
(cd "$here/tools/etcd" && go build -trimpath -ldflags "-s -w" -o "$OUT.tmp/etcd" go.etcd.io/etcd/server/v3)
progress "built etcd" ",\"seconds\":$(( $(date +%s) - start ))"

for cmd in kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl; do
  progress "building $cmd" ",\"version\":\"$K8S_VERSION\""
  start=$(date +%s)
  (cd "$here/tools/k8s" && go build -trimpath -ldflags "$LDF" -o "$OUT.tmp/$cmd" "k8s.io/kubernetes/cmd/$cmd")
  progress "built $cmd" ",\"seconds\":$(( $(date +%s) - start ))"
done
rm -rf "$OUT" && mv "$OUT.tmp" "$OUT"
"$OUT/kube-apiserver" --version >&2
echo "$OUT"
