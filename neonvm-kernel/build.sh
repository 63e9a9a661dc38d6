#!/usr/bin/env bash
# Builds the neonvm-ts guest kernel from Debian's linux-source package (kernel.org is not
# reachable here): x86_64_defconfig + neonvm.config, bzImage only. Output:
#   $NEONVM_CACHE/kernel/neonvm-<version>/vmlinuz and .config
# Usage: neonvm-kernel/build.sh [--config-only] [-j N]
# The runner boots it with -kernelpath (or by replacing /vm/kernel/vmlinuz in its image); since
# virtio and ext4 are built in, no initramfs is needed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
CACHE=${NEONVM_CACHE:-/var/cache/neonvm-ts}
SERIES=${KERNEL_SERIES:-6.1}
JOBS=$(nproc)
CONFIG_ONLY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --config-only) CONFIG_ONLY=1 ;;
    -j) JOBS=$2; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
step() { printf '{"ts":"%s","level":"info","logger":"neonvm-kernel","msg":"%s"}\n' "$(date -u +%FT%T.%3NZ)" "$1" >&2; }

tarball=/usr/src/linux-source-$SERIES.tar.xz
if [ ! -f "$tarball" ]; then
  step "installing linux-source-$SERIES and build dependencies"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "linux-source-$SERIES" build-essential bc bison \
    flex libelf-dev libssl-dev xz-utils > "$CACHE/logs/neonvm-kernel-apt.log" 2>&1 ||
    { echo "apt-get install failed; see $CACHE/logs/neonvm-kernel-apt.log" >&2; exit 1; }
fi
version=$(dpkg-query -W -f='${Version}' "linux-source-$SERIES")
src=$CACHE/kernel-build/linux-source-$SERIES-$version
if [ ! -f "$src/Makefile" ]; then
  step "unpacking $tarball"
  mkdir -p "$CACHE/kernel-build"
  rm -rf "$src.tmp" && mkdir -p "$src.tmp"
  tar -xJf "$tarball" -C "$src.tmp" --strip-components=1
  mv "$src.tmp" "$src"
fi
cd "$src"
step "configuring: x86_64_defconfig + neonvm.config"
make -s x86_64_defconfig
./scripts/kconfig/merge_config.sh -m .config "$here/neonvm.config" > /dev/null
make -s olddefconfig
# Report any fragment option that Kconfig dropped (dependency not met, renamed option).
missing=0
while IFS= read -r line; do
  case "$line" in CONFIG_*=*) ;; *) continue ;; esac
  if ! grep -qx "$line" .config; then echo "not applied: $line" >&2; missing=$((missing + 1)); fi
done < "$here/neonvm.config"
step "config done ($missing fragment options not applied)"
out=$CACHE/kernel/neonvm-$version
mkdir -p "$out"
cp .config "$out/config"
if [ "$CONFIG_ONLY" = 1 ]; then exit 0; fi
step "building bzImage with -j$JOBS"
start=$(date +%s)
make -s -j"$JOBS" bzImage
cp arch/x86/boot/bzImage "$out/vmlinuz.tmp" && mv "$out/vmlinuz.tmp" "$out/vmlinuz"
step "built $out/vmlinuz in $(( $(date +%s) - start )) s"
