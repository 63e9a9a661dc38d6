#!/usr/bin/env bash
# Builds the upstream Kubernetes and etcd binaries the local cluster needs, from their Go modules
# (tools/k8s, tools/etcd), plus the KWOK controller (fake nodes for scale tests, `go install` of
# its module), into a cache outside the repo keyed by version. Builds only what is missing; does
# nothing when the cache already holds everything. None of these binaries are ours; we only run them.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
K8S_VERSION=v1.36.3
ETCD_VERSION=v3.6.16
KWOK_VERSION=v0.8.0
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

want=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl kwok)
missing=()
for b in "${want[@]}"; do [ -x "$OUT/$b" ] || missing+=("$b"); done
if [ ${#missing[@]} -eq 0 ]; then
  progress "binaries cached" ",\"dir\":\"$OUT\""
  echo "$OUT"
  exit 0
fi
mkdir -p "$OUT"

V=k8s.io/component-base/version; C=k8s.io/client-go/pkg/version
minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
LDF="-s -w"
for p in $V $C; do
  LDF="$LDF -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done

for b in "${missing[@]}"; do
  start=$(date +%s)
  tmp="$OUT/.$b.tmp"
  rm -rf "$tmp"
  case "$b" in
    etcd)
      progress "building etcd" ",\"version\":\"$ETCD_VERSION\""
      (cd "$here/tools/etcd" && go build -trimpath -ldflags "-s -w" -o "$tmp" go.etcd.io/etcd/server/v3)
      ;;
    kwok)
      progress "building kwok" ",\"version\":\"$KWOK_VERSION\""
      mkdir -p "$tmp.d"
      (cd "$tmp.d" && GOFLAGS= GOBIN="$tmp.d" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION")
      mv "$tmp.d/kwok" "$tmp" && rmdir "$tmp.d"
      ;;
    *)
      progress "building $b" ",\"version\":\"$K8S_VERSION\""
      (cd "$here/tools/k8s" && go build -trimpath -ldflags "$LDF" -o "$tmp" "k8s.io/kubernetes/cmd/$b")
      ;;
  esac
  mv "$tmp" "$OUT/$b"
  progress "built $b" ",\"seconds\":$(( $(date +%s) - start ))"
done
"$OUT/kube-apiserver" --version >&2
echo "$OUT"
