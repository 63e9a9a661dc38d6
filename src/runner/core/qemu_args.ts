/**
 * The QEMU command line and kernel command line of a VM (reference §6.3): q35, KVM or TCG as
 * detected by the caller, hot-pluggable vCPUs up to ceil(max) (all present in SysfsScaling, ceil(min)
 * in QmpScaling), boot memory = min slots plus a virtio-mem device (8 MiB blocks) covering the rest
 * up to max, disks from the disk plan, NICs from the network plan, serial console on stdio.
 * Pure: builds strings only.
 * @module
 */
import { VIRTIO_MEM_BLOCK_BYTES, type VirtualMachineSpec } from "../../api/virtualmachine.ts";
import type { RunnerCpuScalingMode } from "../../api/runner_api.ts";
import { MIGRATION_PORT } from "../../api/runner_api.ts";
import { type DiskPlan, driveArg } from "./disks.ts";
import type { QemuNic } from "./network.ts";
import type { RunnerPaths } from "./paths.ts";
import { TAP_QUEUES } from "./network.ts";

/** Accelerator QEMU uses. */
export type Accelerator = "kvm" | "tcg";

/** Size of QEMU's TCG translation cache in MiB (bounded so the pod's memory limit holds). */
export const TCG_TB_SIZE_MIB = 128;

/** Inputs of {@linkcode buildQemuArgs}. */
export interface QemuArgsInput {
  /** The VM spec. */
  readonly spec: VirtualMachineSpec;
  /** CPU scaling mode. */
  readonly cpuScalingMode: RunnerCpuScalingMode;
  /** KVM or TCG (the caller detects /dev/kvm and honours `enableAcceleration`). */
  readonly accelerator: Accelerator;
  /** Runner file layout. */
  readonly paths: RunnerPaths;
  /** Disk plan (drives after the root disk and runtime ISO). */
  readonly disks: DiskPlan;
  /** NICs (empty: no network, used by tests that run QEMU without a pod network). */
  readonly nics: readonly QemuNic[];
  /** Kernel image path. */
  readonly kernelPath: string;
  /** Initramfs path, when the kernel needs one (the Debian kernel does: virtio is modular). */
  readonly initrdPath?: string;
  /** Kernel command line. */
  readonly kernelCmdline: string;
  /** Use a virtio console instead of the serial console for the guest console. */
  readonly useVirtioConsole: boolean;
  /** Start as a migration target (`-incoming tcp:0:20187`). */
  readonly receiveMigration: boolean;
  /** Whether /dev/vhost-net is usable (vhost=on only then). */
  readonly vhostNet: boolean;
  /** User QEMU drops to (`-runas`), when that user exists. */
  readonly runAs?: string;
  /** Address QMP listens on (reference: `0.0.0.0`). */
  readonly qmpListenAddress?: string;
}

/** Inputs of {@linkcode buildKernelCmdline}. */
export interface KernelCmdlineInput {
  /** The VM spec. */
  readonly spec: VirtualMachineSpec;
  /** CPU scaling mode. */
  readonly cpuScalingMode: RunnerCpuScalingMode;
  /** `memory_hotplug.auto_movable_ratio`. */
  readonly memhpAutoMovableRatio: string;
  /** Guest hostname (`vm-<pod hostname>`). */
  readonly hostname: string;
  /** Pod name (for the `ip=` argument of the extra network). */
  readonly podName: string;
  /** Extra-network address and dotted mask, when the extra network is on. */
  readonly extraNet?: { readonly ip: string; readonly mask: string };
  /** Appended user command line (`-appendKernelCmdline`). */
  readonly append?: string;
  /** Use the virtio console. */
  readonly useVirtioConsole: boolean;
}

/** Whole vCPUs needed for a MilliCPU amount. */
export function ceilCpus(milliCpu: number): number {
  return Math.ceil(milliCpu / 1000);
}

/** vCPUs QEMU boots with: all of them in SysfsScaling, ceil(min) in QmpScaling. */
export function bootCpus(spec: VirtualMachineSpec, mode: RunnerCpuScalingMode): number {
  const max = Math.max(1, ceilCpus(spec.guest.cpus.max));
  return mode === "SysfsScaling" ? max : Math.min(max, Math.max(1, ceilCpus(spec.guest.cpus.min)));
}

/** Builds the kernel command line. */
export function buildKernelCmdline(input: KernelCmdlineInput): string {
  const parts = [
    "panic=-1",
    "init=/neonvm/bin/init",
    "loglevel=6",
    "root=/dev/vda",
    "rw",
    "memhp_default_state=online",
    "memory_hotplug.online_policy=auto-movable",
    `memory_hotplug.auto_movable_ratio=${input.memhpAutoMovableRatio}`,
  ];
  if (input.extraNet) {
    parts.push(`ip=${input.extraNet.ip}:::${input.extraNet.mask}:${input.podName}:eth1:off`);
  }
  parts.push(`hostname=${input.hostname}`);
  if (input.append !== undefined && input.append.trim() !== "") parts.push(input.append.trim());
  if (input.cpuScalingMode === "SysfsScaling") {
    parts.push(`maxcpus=${Math.max(1, ceilCpus(input.spec.guest.cpus.min))}`);
  }
  parts.push(input.useVirtioConsole ? "console=hvc0" : "console=ttyS1");
  return parts.join(" ");
}

/** Builds QEMU's argv (without the binary). */
export function buildQemuArgs(input: QemuArgsInput): string[] {
  const { spec, paths } = input;
  const g = spec.guest;
  const listen = input.qmpListenAddress ?? "0.0.0.0";
  const args: string[] = [];
  if (input.runAs !== undefined) args.push("-runas", input.runAs);
  args.push(
    "-machine",
    "q35",
    "-nographic",
    "-no-reboot",
    "-nodefaults",
    "-only-migratable",
    "-audiodev",
    "none,id=noaudio",
    "-serial",
    "pty",
    "-msg",
    "timestamp=on",
    "-qmp",
    `tcp:${listen}:${spec.qmp},server,wait=off`,
    "-qmp",
    `tcp:${listen}:${spec.qmpManual},server,wait=off`,
    "-qmp",
    `unix:${paths.qmpSigtermSocket},server,wait=off`,
    "-device",
    "virtio-serial",
    "-chardev",
    `socket,path=${paths.logSocket},server=on,wait=off,id=log`,
    "-device",
    "virtserialport,chardev=log,name=tech.neon.log.0",
  );
  input.disks.drives.forEach((d, i) => args.push("-drive", driveArg(d, i === 0 ? 0 : undefined)));
  if (input.useVirtioConsole) {
    args.push(
      "-chardev",
      "stdio,id=virtio-console",
      "-device",
      "virtconsole,chardev=virtio-console",
    );
  } else {
    args.push("-serial", "stdio");
  }
  if (input.accelerator === "kvm") args.push("-enable-kvm");
  // Under TCG the translated-code cache is guest-independent overhead that QEMU 7.2 grows to a
  // quarter of guest RAM or 1 GiB (measured: 320 MiB resident for a 1 GiB guest); 128 MiB keeps
  // it inside the runner pod's memory overhead, above the guest's maximum (D4).
  else args.push("-accel", `tcg,tb-size=${TCG_TB_SIZE_MIB}`);
  const maxCpus = Math.max(1, ceilCpus(g.cpus.max));
  args.push(
    "-cpu",
    "max",
    "-smp",
    `cpus=${
      bootCpus(spec, input.cpuScalingMode)
    },maxcpus=${maxCpus},sockets=1,cores=${maxCpus},threads=1`,
  );
  const slot = g.memorySlotSize;
  const minSlots = g.memorySlots.min;
  const maxSlots = Math.max(g.memorySlots.max, minSlots);
  args.push(
    "-m",
    `size=${slot * minSlots}b,slots=${maxSlots - minSlots},maxmem=${slot * maxSlots}b`,
  );
  if (maxSlots > minSlots) {
    args.push(
      "-object",
      `memory-backend-ram,id=vmem0,size=${(maxSlots - minSlots) * slot}b`,
      "-device",
      `virtio-mem-pci,id=vm0,memdev=vmem0,block-size=${VIRTIO_MEM_BLOCK_BYTES},requested-size=0`,
    );
  }
  for (const nic of input.nics) {
    args.push(
      "-netdev",
      `tap,id=${nic.id},ifname=${nic.ifname},queues=${TAP_QUEUES},script=no,downscript=no,vhost=${
        input.vhostNet ? "on" : "off"
      }`,
      "-device",
      `virtio-net-pci,mq=on,vectors=${2 * TAP_QUEUES + 2},netdev=${nic.id},mac=${nic.mac}`,
    );
  }
  args.push("-kernel", input.kernelPath);
  if (input.initrdPath !== undefined) args.push("-initrd", input.initrdPath);
  args.push("-append", input.kernelCmdline);
  if (input.receiveMigration) args.push("-incoming", `tcp:0:${MIGRATION_PORT}`);
  return args;
}
