#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian 12 machine of this kind, skipping what is
# already there: Debian packages, Deno (pinned, from the npm registry), the npm dependencies, and the
# upstream Kubernetes/etcd binaries (built once from Go modules, cached by version).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
DENO_VERSION=2.9.6
CACHE=${NEONVM_CACHE:-/var/cache/neonvm-ts}
mkdir -p "$CACHE/logs" /opt/neonvm-ts/bin

step() { printf '{"ts":"%s","level":"info","logger":"install","msg":"%s"}\n' "$(date -u +%FT%T.%3NZ)" "$1"; }

PKGS=(qemu-system-x86 qemu-utils containerd runc containernetworking-plugins umoci skopeo
  busybox-static e2fsprogs postgresql linux-image-cloud-amd64 iptables conntrack socat iproute2
  openssl catatonit debootstrap jq curl genisoimage dnsmasq-base cpio quota)
missing=()
for p in "${PKGS[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  step "installing Debian packages: ${missing[*]}"
  apt-get update -q > "$CACHE/logs/apt.log" 2>&1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >> "$CACHE/logs/apt.log" 2>&1 ||
    { echo "apt-get install failed; see $CACHE/logs/apt.log" >&2; exit 1; }
fi
# Debian starts these services on install; we run our own instances.
for svc in containerd postgresql; do
  if command -v service >/dev/null && service "$svc" status >/dev/null 2>&1; then service "$svc" stop >/dev/null 2>&1 || true; fi
done

if ! /opt/neonvm-ts/bin/deno --version 2>/dev/null | grep -q "deno $DENO_VERSION"; then
  step "installing deno $DENO_VERSION from npm"
  (cd /opt/neonvm-ts && npm install --no-audit --no-fund --silent "deno@$DENO_VERSION" > "$CACHE/logs/npm-deno.log" 2>&1)
  ln -sf /opt/neonvm-ts/node_modules/@deno/linux-x64-glibc/deno /opt/neonvm-ts/bin/deno
fi
export PATH=/opt/neonvm-ts/bin:$PATH
step "installing npm dependencies"
(cd "$here" && deno install --quiet > "$CACHE/logs/deno-install.log" 2>&1) ||
  { echo "deno install failed; see $CACHE/logs/deno-install.log" >&2; exit 1; }

step "building upstream Kubernetes binaries (cached)"
bash "$here/scripts/build_k8s_bins.sh" > "$CACHE/logs/build-bins.log" 2>&1 ||
  { echo "building Kubernetes binaries failed; see $CACHE/logs/build-bins.log" >&2; exit 1; }
step "dependencies ready"
