/**
 * neonvm-runner configuration: the reference's flags (§6.1) — `-vmspec`, `-vmstatus` (gzip+base64
 * JSON), `-kernelpath`, `-appendKernelCmdline`, `-skip-cgroup-management`,
 * `-qemu-disk-cache-settings`, `-memhp-auto-movable-ratio`, `-cpu-scaling-mode`,
 * `-use-virtio-console` — plus ours (`-initrdpath`, `-vm-dir`, `-accel`, `-skip-network`,
 * `-qemu-bin`, `-shutdown-grace-seconds`), and env `K8S_POD_NAME`, `RECEIVE_MIGRATION`. Accepts
 * `-flag value`, `-flag=value`, `--flag value`, `--flag=value`. Everything is parsed with zod;
 * a bad value is a ConfigError naming the flag. Must not start anything.
 * @module
 */
import { parseArgs } from "node:util";
import { z } from "zod";
import {
  decodeRunnerFlagJson,
  RUNNER_ENV_POD_NAME,
  RUNNER_ENV_RECEIVE_MIGRATION,
  RunnerCpuScalingModeSchema,
} from "../api/runner_api.ts";
import {
  type VirtualMachineSpec,
  VirtualMachineSpecSchema,
  type VirtualMachineStatus,
  VirtualMachineStatusSchema,
} from "../api/virtualmachine.ts";
import { ConfigError } from "../lib/errors.ts";

const BOOL_FLAGS = ["skip-cgroup-management", "use-virtio-console", "skip-network"] as const;
const STRING_FLAGS = [
  "vmspec",
  "vmstatus",
  "kernelpath",
  "initrdpath",
  "appendKernelCmdline",
  "qemu-disk-cache-settings",
  "memhp-auto-movable-ratio",
  "cpu-scaling-mode",
  "vm-dir",
  "accel",
  "qemu-bin",
  "shutdown-grace-seconds",
  "log-level",
] as const;

/** Flag values after parsing, before decoding the spec. */
const FlagsSchema = z.object({
  vmspec: z.string().min(1, { message: "required" }),
  vmstatus: z.string().optional(),
  kernelpath: z.string().min(1).default("/vm/kernel/vmlinuz"),
  initrdpath: z.string().optional(),
  appendKernelCmdline: z.string().default(""),
  "skip-cgroup-management": z.boolean().default(false),
  "use-virtio-console": z.boolean().default(false),
  "skip-network": z.boolean().default(false),
  "qemu-disk-cache-settings": z.string().min(1).default("cache=none"),
  "memhp-auto-movable-ratio": z.string().regex(/^[0-9]+$/, { message: "expected an integer" }),
  "cpu-scaling-mode": RunnerCpuScalingModeSchema,
  "vm-dir": z.string().min(1).default("/vm"),
  accel: z.enum(["auto", "kvm", "tcg"]).default("auto"),
  "qemu-bin": z.string().min(1).default("qemu-system-x86_64"),
  "shutdown-grace-seconds": z.coerce.number().positive().optional(),
  "log-level": z.enum(["debug", "info", "warn", "error"]).default("info"),
});

/** The runner's frozen configuration. */
export interface RunnerConfig {
  /** The VM spec (defaults applied). */
  readonly spec: VirtualMachineSpec;
  /** The VM status at pod creation. */
  readonly status: VirtualMachineStatus;
  /** Pod name (`K8S_POD_NAME`). */
  readonly podName: string;
  /** `RECEIVE_MIGRATION=true`. */
  readonly receiveMigration: boolean;
  /** Kernel path. */
  readonly kernelPath: string;
  /** Initramfs path (flag, or `initrd.img` beside the kernel when present). */
  readonly initrdPath: string | undefined;
  /** Extra kernel arguments. */
  readonly appendKernelCmdline: string;
  /** Do not create the QEMU cgroup. */
  readonly skipCgroupManagement: boolean;
  /** Guest console on virtio instead of serial. */
  readonly useVirtioConsole: boolean;
  /** Do not set up pod networking (tests without a pod network namespace). */
  readonly skipNetwork: boolean;
  /** QEMU cache options for writable disks. */
  readonly diskCacheSettings: string;
  /** `memory_hotplug.auto_movable_ratio`. */
  readonly memhpAutoMovableRatio: string;
  /** CPU scaling mode. */
  readonly cpuScalingMode: "QmpScaling" | "SysfsScaling";
  /** Root of the runner's files (`/vm`). */
  readonly vmDir: string;
  /** Accelerator choice. */
  readonly accel: "auto" | "kvm" | "tcg";
  /** QEMU binary. */
  readonly qemuBin: string;
  /** Seconds between ACPI power-down and `quit` on SIGTERM. */
  readonly shutdownGraceSeconds: number;
  /** Log level. */
  readonly logLevel: "debug" | "info" | "warn" | "error";
}

/** Rewrites Go-style flags (`-flag`, `-flag=true`) into what `parseArgs` accepts. */
export function normaliseFlags(args: readonly string[]): string[] {
  const out: string[] = [];
  for (const a of args) {
    let s = /^-[A-Za-z]/.test(a) ? `-${a}` : a;
    const m = /^--([A-Za-z-]+)=(true|false)$/.exec(s);
    if (m && (BOOL_FLAGS as readonly string[]).includes(m[1]!)) {
      if (m[2] === "false") continue;
      s = `--${m[1]}`;
    }
    out.push(s);
  }
  return out;
}

function issues(e: z.ZodError): string {
  return e.issues.map((i) => `-${i.path.join(".")}: ${i.message}`).join("; ");
}

/** Parses flags and environment; `fileExists` decides the default initrd. */
export async function loadRunnerConfig(
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  fileExists: (path: string) => boolean,
): Promise<RunnerConfig> {
  const options: Record<string, { type: "string" | "boolean" }> = {};
  for (const f of BOOL_FLAGS) options[f] = { type: "boolean" };
  for (const f of STRING_FLAGS) options[f] = { type: "string" };
  let values: Record<string, unknown>;
  try {
    values = parseArgs({ args: normaliseFlags(args), options, strict: true }).values;
  } catch (cause) {
    throw new ConfigError(`Cannot parse runner flags: ${String(cause)}`, { cause });
  }
  const flags = FlagsSchema.safeParse(values);
  if (!flags.success) throw new ConfigError(`Bad runner flags: ${issues(flags.error)}`);
  const f = flags.data;
  const podName = env[RUNNER_ENV_POD_NAME];
  if (podName === undefined || podName === "") {
    throw new ConfigError(`Bad runner environment: ${RUNNER_ENV_POD_NAME} is required`);
  }
  let specJson: unknown;
  let statusJson: unknown = {};
  try {
    specJson = await decodeRunnerFlagJson(f.vmspec);
    if (f.vmstatus !== undefined && f.vmstatus !== "") {
      statusJson = await decodeRunnerFlagJson(f.vmstatus);
    }
  } catch (cause) {
    throw new ConfigError("Cannot decode -vmspec/-vmstatus (expected gzip+base64 JSON)", { cause });
  }
  const spec = VirtualMachineSpecSchema.safeParse(specJson);
  if (!spec.success) throw new ConfigError(`Bad -vmspec: ${issues(spec.error)}`);
  const status = VirtualMachineStatusSchema.safeParse(statusJson ?? {});
  if (!status.success) throw new ConfigError(`Bad -vmstatus: ${issues(status.error)}`);
  const g = spec.data.guest;
  if (g.cpus.min > g.cpus.use || g.cpus.use > g.cpus.max) {
    throw new ConfigError("Bad -vmspec: guest.cpus must satisfy min <= use <= max");
  }
  if (g.memorySlots.min > g.memorySlots.use || g.memorySlots.use > g.memorySlots.max) {
    throw new ConfigError("Bad -vmspec: guest.memorySlots must satisfy min <= use <= max");
  }
  const besideKernel = f.kernelpath.replace(/[^/]*$/, "initrd.img");
  const initrdPath = f.initrdpath !== undefined && f.initrdpath !== ""
    ? f.initrdpath
    : fileExists(besideKernel)
    ? besideKernel
    : undefined;
  return Object.freeze({
    spec: spec.data,
    status: status.data,
    podName,
    receiveMigration: env[RUNNER_ENV_RECEIVE_MIGRATION] === "true",
    kernelPath: f.kernelpath,
    initrdPath,
    appendKernelCmdline: f.appendKernelCmdline,
    skipCgroupManagement: f["skip-cgroup-management"],
    useVirtioConsole: f["use-virtio-console"],
    skipNetwork: f["skip-network"],
    diskCacheSettings: f["qemu-disk-cache-settings"],
    memhpAutoMovableRatio: f["memhp-auto-movable-ratio"],
    cpuScalingMode: f["cpu-scaling-mode"],
    vmDir: f["vm-dir"],
    accel: f.accel,
    qemuBin: f["qemu-bin"],
    shutdownGraceSeconds: f["shutdown-grace-seconds"] ?? spec.data.terminationGracePeriodSeconds,
    logLevel: f["log-level"],
  });
}
