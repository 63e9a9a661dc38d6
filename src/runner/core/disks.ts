/**
 * What disks a VM gets (reference §6.2, §6.3): the images the runner must create (emptyDisk
 * qcow2s, swap, configMap/secret ISOs, the SSH keys ISO), the `-drive` arguments QEMU gets for
 * them, and the runtime disk's files (`sysctl.conf`, `command.sh`, `args.sh`, `env.sh`,
 * `mounts.sh`, `resize-swap-internal.sh`) that the guest's init reads. Pure: builds data only;
 * io/disks.ts creates the files.
 * @module
 */
import type { VirtualMachineSpec } from "../../api/virtualmachine.ts";
import { isShellName, shellQuote, shellQuoteCommand } from "./shell.ts";
import type { RunnerPaths } from "./paths.ts";

/** An image the runner creates before starting QEMU. */
export type DiskImageTask =
  | {
    /** A fresh ext4 file system, converted to qcow2. */
    readonly kind: "emptyDisk";
    readonly name: string;
    readonly sizeBytes: number;
    readonly path: string;
  }
  | {
    /** A swap area, converted to qcow2. */
    readonly kind: "swap";
    readonly name: "swapdisk";
    readonly sizeBytes: number;
    readonly path: string;
  }
  | {
    /** An ISO 9660 image of the regular files in `sourceDir` (volume label = `name`). */
    readonly kind: "iso";
    readonly name: string;
    readonly sourceDir: string;
    readonly path: string;
  };

/** One `-drive` of the QEMU command line. */
export interface QemuDrive {
  /** Drive id. */
  readonly id: string;
  /** Image path. */
  readonly file: string;
  /** `disk` or `cdrom`. */
  readonly media: "disk" | "cdrom";
  /** Extra options after the common ones (cache settings, discard, readonly). */
  readonly options: readonly string[];
}

/** Everything about disks the runner needs to do and to pass to QEMU. */
export interface DiskPlan {
  /** Images to create, in order. */
  readonly tasks: readonly DiskImageTask[];
  /** Drives in QEMU order (root disk first, then the runtime ISO). */
  readonly drives: readonly QemuDrive[];
  /** Files of the runtime ISO (label `vmruntime`). */
  readonly runtimeFiles: Readonly<Record<string, string>>;
  /** Size of `/dev/shm` to set in the guest when swap is larger than half the boot memory. */
  readonly shmSizeBytes: number | undefined;
}

/** Inputs to {@linkcode planDisks}. */
export interface DiskPlanInput {
  /** The VM spec. */
  readonly spec: VirtualMachineSpec;
  /** Runner file layout. */
  readonly paths: RunnerPaths;
  /** QEMU cache options for writable disks, e.g. `cache=none`. */
  readonly diskCacheSettings: string;
  /** Whether the SSH keys volume is mounted (VM `enableSSH`). */
  readonly sshKeys: boolean;
}

/** sysctls the runner always sets (reference §6.2). */
export const BASE_SYSCTLS: readonly string[] = [
  "kernel.core_pattern=core",
  "kernel.core_uses_pid=1",
];

const BIN = "/neonvm/bin";

function splitOptions(s: string): string[] {
  return s.split(",").map((x) => x.trim()).filter((x) => x !== "");
}

/** Builds the disk plan of a VM. */
export function planDisks(input: DiskPlanInput): DiskPlan {
  const { spec, paths } = input;
  const cache = splitOptions(input.diskCacheSettings);
  const tasks: DiskImageTask[] = [];
  const drives: QemuDrive[] = [
    { id: "rootdisk", file: paths.rootDisk, media: "disk", options: cache },
    {
      id: "runtime",
      file: paths.runtimeIso,
      media: "cdrom",
      options: ["readonly=on", "cache=none"],
    },
  ];
  const mounts: string[] = ["set -euo pipefail"];

  if (input.sshKeys) {
    const path = `${paths.imagesDir}/ssh-authorized-keys.iso`;
    tasks.push({ kind: "iso", name: "ssh-authorized-keys", sourceDir: paths.sshDir, path });
    drives.push({ id: "ssh-authorized-keys", file: path, media: "cdrom", options: ["cache=none"] });
    mounts.push(
      `${BIN}/mkdir -p /mnt/ssh`,
      `${BIN}/mount -t iso9660 -o ro,mode=0644 $(${BIN}/blkid -L ssh-authorized-keys) /mnt/ssh`,
    );
  }

  const swap = spec.guest.settings?.swap;
  const bootMemBytes = spec.guest.memorySlotSize * spec.guest.memorySlots.min;
  let shmSizeBytes: number | undefined;
  if (swap !== undefined) {
    const path = `${paths.imagesDir}/swapdisk.qcow2`;
    tasks.push({ kind: "swap", name: "swapdisk", sizeBytes: swap, path });
    drives.push({
      id: "swapdisk",
      file: path,
      media: "disk",
      options: [...cache, "discard=unmap"],
    });
    mounts.push(`${BIN}/sh /neonvm/runtime/resize-swap-internal.sh ${swap}`);
    if (swap > bootMemBytes / 2) shmSizeBytes = swap;
  }

  for (const disk of spec.disks ?? []) {
    const mp = disk.mountPath;
    const q = shellQuote(mp);
    if (disk.emptyDisk) {
      const path = `${paths.imagesDir}/${disk.name}.qcow2`;
      tasks.push({ kind: "emptyDisk", name: disk.name, sizeBytes: disk.emptyDisk.size, path });
      drives.push({
        id: disk.name,
        file: path,
        media: "disk",
        options: disk.emptyDisk.discard ? [...cache, "discard=unmap"] : cache,
      });
      const dev = `$(${BIN}/blkid -L ${disk.name})`;
      mounts.push(`${BIN}/mkdir -p ${q}`);
      if (disk.emptyDisk.enableQuotas) {
        mounts.push(
          `${BIN}/tune2fs -Q prjquota ${dev}`,
          `${BIN}/tune2fs -E mount_opts=prjquota ${dev}`,
        );
      }
      mounts.push(
        `${BIN}/mount ${disk.emptyDisk.discard ? "-o discard " : ""}${dev} ${q}`,
        `${BIN}/chmod 0777 ${q}`,
      );
    } else if ((disk.configMap || disk.secret) && !disk.watch) {
      const path = `${paths.imagesDir}/${disk.name}.iso`;
      tasks.push({ kind: "iso", name: disk.name, sourceDir: `${paths.mountsDir}${mp}`, path });
      drives.push({ id: disk.name, file: path, media: "cdrom", options: ["cache=none"] });
      mounts.push(
        `${BIN}/mkdir -p ${q}`,
        `${BIN}/mount -t iso9660 -o ro,mode=0644 $(${BIN}/blkid -L ${disk.name}) ${q}`,
      );
    } else if (disk.tmpfs) {
      mounts.push(
        `${BIN}/mkdir -p ${q}`,
        `${BIN}/chmod 0777 ${q}`,
        `${BIN}/mount -t tmpfs -o size=${disk.tmpfs.size} ${disk.name} ${q}`,
      );
    } else {
      // Watched configMap/secret: the runner pushes files through neonvm-daemon.
      mounts.push(`${BIN}/mkdir -p ${q}`);
    }
  }
  if (spec.tls) mounts.push(`${BIN}/mkdir -p ${shellQuote(spec.tls.mountPath)}`);
  if (shmSizeBytes !== undefined) {
    mounts.push(`${BIN}/mount -o remount,size=${shmSizeBytes} /dev/shm`);
  }

  return {
    tasks,
    drives,
    runtimeFiles: runtimeDiskFiles(spec, mounts),
    shmSizeBytes,
  };
}

/** Files of the runtime ISO. `mountsLines` is the body of mounts.sh. */
function runtimeDiskFiles(
  spec: VirtualMachineSpec,
  mountsLines: readonly string[],
): Record<string, string> {
  const files: Record<string, string> = {};
  const sysctls = [...BASE_SYSCTLS, ...(spec.guest.settings?.sysctl ?? [])];
  files["sysctl.conf"] = sysctls.map((l) => l + "\n").join("");
  if (spec.guest.command !== undefined) {
    files["command.sh"] = shellQuoteCommand(spec.guest.command) + "\n";
  }
  if (spec.guest.args !== undefined) files["args.sh"] = shellQuoteCommand(spec.guest.args) + "\n";
  files["env.sh"] = (spec.guest.env ?? [])
    // Why: the reference writes any name; a name that is not a shell identifier would break the
    // whole env.sh, so such entries are skipped (the CRD cannot express the rule).
    .filter((e) => isShellName(e.name))
    .map((e) => `export ${e.name}=${shellQuote(e.value)}\n`).join("");
  files["mounts.sh"] = mountsLines.map((l) => l + "\n").join("");
  if (spec.guest.settings?.swap !== undefined) {
    files["resize-swap-internal.sh"] = resizeSwapScript();
  }
  return files;
}

/** `resize-swap-internal.sh <bytes>`: (re)creates the swap area on the swap disk. */
function resizeSwapScript(): string {
  return [
    "set -euo pipefail",
    'size="$1"',
    `dev=$(${BIN}/blkid -L swapdisk)`,
    `${BIN}/swapoff "$dev" 2>/dev/null || true`,
    'if [ "$size" = 0 ]; then exit 0; fi',
    `${BIN}/mkswap -L swapdisk "$dev" $((size / 1024))`,
    `${BIN}/swapon -d "$dev"`,
    "",
  ].join("\n");
}

/** The `-drive` argument value of a drive. */
export function driveArg(d: QemuDrive, index?: number): string {
  return [
    `id=${d.id}`,
    `file=${d.file}`,
    "if=virtio",
    `media=${d.media}`,
    ...(index === undefined ? [] : [`index=${index}`]),
    ...d.options,
  ].join(",");
}
