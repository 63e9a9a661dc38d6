/**
 * Kernel module selection: which `.ko` files (and in which load order) the guest needs, computed
 * from the kernel's `modules.dep`. Pure: no I/O; the caller reads `modules.dep`.
 * @module
 */
import { ParseError } from "../../src/lib/errors.ts";

/** Modules the guest loads at boot: virtio transport, disks, net, console, virtio-mem, iso9660
 * (runtime disk), the quota format (ext4 project quotas on emptyDisks), the ACPI power button and
 * evdev (for acpid), and the KVM PTP clock (fails harmlessly without KVM). */
export const GUEST_MODULES = [
  "virtio_pci",
  "virtio_blk",
  "virtio_net",
  "virtio_console",
  "virtio_mem",
  "virtio_balloon",
  "isofs",
  "quota_v2",
  "button",
  "evdev",
  "ptp_kvm",
] as const;

/** Modules the initramfs loads so the kernel can mount `root=/dev/vda`. */
export const INITRD_MODULES = ["virtio_pci", "virtio_blk"] as const;

/** Parsed `modules.dep`: module path -> dependency paths (relative to `/lib/modules/<ver>`). */
export type ModuleDeps = ReadonlyMap<string, readonly string[]>;

/** Module name as the kernel spells it (`kernel/drivers/net/virtio_net.ko` -> `virtio_net`). */
export function moduleName(path: string): string {
  const base = path.slice(path.lastIndexOf("/") + 1);
  return base.replace(/\.ko(\.(xz|gz|zst))?$/, "").replaceAll("-", "_");
}

/** Parses `modules.dep` text. */
export function parseModulesDep(text: string): ModuleDeps {
  const deps = new Map<string, readonly string[]>();
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const colon = line.indexOf(":");
    if (colon < 0) throw new ParseError(`modules.dep: malformed line "${line}"`);
    const rest = line.slice(colon + 1).trim();
    deps.set(line.slice(0, colon).trim(), rest === "" ? [] : rest.split(/\s+/));
  }
  return deps;
}

/**
 * Returns the module paths needed for `wanted` (by name), dependencies first. Names missing from
 * `modules.dep` are returned in `builtinOrMissing` (they are built in, or not in this kernel).
 */
export function moduleClosure(
  deps: ModuleDeps,
  wanted: readonly string[],
): { ordered: string[]; builtinOrMissing: string[] } {
  const byName = new Map<string, string>();
  for (const path of deps.keys()) byName.set(moduleName(path), path);
  const ordered: string[] = [];
  const seen = new Set<string>();
  const visit = (path: string, stack: readonly string[]) => {
    if (seen.has(path)) return;
    if (stack.includes(path)) throw new ParseError(`modules.dep: dependency cycle at ${path}`);
    for (const d of deps.get(path) ?? []) visit(d, [...stack, path]);
    seen.add(path);
    ordered.push(path);
  };
  const builtinOrMissing: string[] = [];
  for (const name of wanted) {
    const path = byName.get(name.replaceAll("-", "_"));
    if (path === undefined) builtinOrMissing.push(name);
    else visit(path, []);
  }
  return { ordered, builtinOrMissing };
}

/** Renders a `modules.dep` for just the selected modules (what busybox modprobe reads). */
export function renderModulesDep(deps: ModuleDeps, selected: readonly string[]): string {
  return selected.map((p) => `${p}: ${(deps.get(p) ?? []).join(" ")}`.trimEnd() + "\n").join("");
}
