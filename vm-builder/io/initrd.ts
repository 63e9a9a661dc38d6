/**
 * The guest initramfs. The Debian cloud kernel builds virtio_pci and virtio_blk as modules, so it
 * cannot mount `root=/dev/vda` on its own; this tiny initramfs (static busybox + those modules)
 * loads them, mounts the root disk and switches to `init=` from the kernel command line. The
 * runner passes it with `-initrd`. Does not touch the root disk's contents.
 * @module
 */
import { type CpioEntry, encodeCpio } from "../core/cpio.ts";
import { INITRD_MODULES, moduleClosure, parseModulesDep } from "../core/modules.ts";

/** Finds the Debian cloud kernel in /boot; returns its version and vmlinuz path. */
export async function findCloudKernel(
  bootDir = "/boot",
): Promise<{ version: string; vmlinuz: string } | undefined> {
  const names: string[] = [];
  for await (const e of Deno.readDir(bootDir)) {
    if (/^vmlinuz-.*-cloud-amd64$/.test(e.name)) names.push(e.name);
  }
  names.sort();
  const last = names.at(-1);
  return last === undefined
    ? undefined
    : { version: last.slice("vmlinuz-".length), vmlinuz: `${bootDir}/${last}` };
}

function initScript(version: string, modules: readonly string[]): string {
  return `#!/bin/busybox sh
# neonvm-ts initramfs: load the virtio block driver, mount the root disk, switch to its init.
B=/bin/busybox
$B mkdir -p /proc /sys /dev /newroot
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
$B mount -t devtmpfs devtmpfs /dev
for m in ${modules.join(" ")}; do
  $B insmod /lib/modules/${version}/$m || echo "initrd: insmod $m failed"
done
root=/dev/vda; init=/sbin/init; flags=ro
for w in $($B cat /proc/cmdline); do
  case "$w" in
    root=*) root=\${w#root=} ;;
    init=*) init=\${w#init=} ;;
    rw) flags=rw ;;
    ro) flags=ro ;;
  esac
done
case "$root" in LABEL=*|UUID=*) root=$($B findfs "$root") ;; esac
i=0
while [ ! -b "$root" ] && [ $i -lt 300 ]; do $B sleep 0.1; i=$((i + 1)); done
if ! $B mount -t ext4 -o "$flags" "$root" /newroot; then
  echo "initrd: cannot mount root $root"
  exec $B sh
fi
$B mkdir -p /newroot/dev
$B mount --move /dev /newroot/dev
$B umount /proc /sys
exec $B switch_root /newroot "$init"
`;
}

/** Builds the initramfs (gzip'd newc cpio) for kernel `version` into `outPath` (atomically). */
export async function buildInitrd(opts: {
  version: string;
  moduleDir: string;
  busyboxPath: string;
  outPath: string;
}): Promise<{ bytes: number; modules: string[] }> {
  const deps = parseModulesDep(await Deno.readTextFile(`${opts.moduleDir}/modules.dep`));
  const { ordered } = moduleClosure(deps, INITRD_MODULES);
  const entries: CpioEntry[] = [];
  const enc = new TextEncoder();
  const dirs = new Set<string>(["bin", "dev", "proc", "sys", "newroot"]);
  for (const p of ordered) {
    const parts = `lib/modules/${opts.version}/${p}`.split("/");
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join("/"));
  }
  for (const d of [...dirs].sort()) entries.push({ name: d, type: "dir", mode: 0o755 });
  entries.push({
    name: "bin/busybox",
    type: "file",
    mode: 0o755,
    data: await Deno.readFile(opts.busyboxPath),
  });
  entries.push({ name: "bin/sh", type: "symlink", mode: 0o777, data: enc.encode("busybox") });
  for (const p of ordered) {
    entries.push({
      name: `lib/modules/${opts.version}/${p}`,
      type: "file",
      mode: 0o644,
      data: await Deno.readFile(`${opts.moduleDir}/${p}`),
    });
  }
  entries.push({
    name: "init",
    type: "file",
    mode: 0o755,
    data: enc.encode(initScript(opts.version, ordered)),
  });
  const cpio = encodeCpio(entries);
  const gz = new Uint8Array(
    await new Response(
      new Blob([cpio as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
        new CompressionStream("gzip"),
      ),
    ).arrayBuffer(),
  );
  const tmp = `${opts.outPath}.tmp-${Deno.pid}`;
  await Deno.writeFile(tmp, gz);
  await Deno.rename(tmp, opts.outPath);
  return { bytes: gz.length, modules: ordered };
}
