/**
 * The QEMU cgroup (reference §6.6, used only without `-skip-cgroup-management`): creates
 * `<own cgroup>/neonvm-qemu-<pod>` under cgroup v1 `cpu` or v2, writes the CPU quota for a
 * (fractional) CPU amount, and gives the argv prefix that starts QEMU inside it. Must not touch
 * cgroups other than the one it creates.
 * @module
 */
import type { Logger } from "../../lib/log.ts";
import type { MilliCpu } from "../../api/quantity.ts";
import { cgroupCpuQuota, cpuMaxLine, qemuCgroupPath } from "../core/cpu.ts";

/** A created QEMU cgroup. */
export interface QemuCgroup {
  /** Directory of the cgroup. */
  readonly dir: string;
  /** 1 or 2. */
  readonly version: 1 | 2;
  /** Sets the CPU quota for `milliCpu` of use. */
  setCpu(milliCpu: MilliCpu): Promise<void>;
  /** argv prefix that moves the process into the cgroup, then execs the rest. */
  readonly execPrefix: readonly string[];
}

/** Creates the cgroup and sets the initial quota. `fsRoot` is `/sys/fs/cgroup` in a pod. */
export async function createQemuCgroup(
  podName: string,
  initialMilliCpu: MilliCpu,
  logger: Logger,
  fsRoot = "/sys/fs/cgroup",
): Promise<QemuCgroup> {
  const self = await Deno.readTextFile("/proc/self/cgroup");
  const { version, path } = qemuCgroupPath(self, podName);
  const dir = version === 1 ? `${fsRoot}/cpu${path}` : `${fsRoot}${path}`;
  await Deno.mkdir(dir, { recursive: true });
  const setCpu = async (milliCpu: MilliCpu) => {
    const q = cgroupCpuQuota(milliCpu);
    if (version === 1) {
      await Deno.writeTextFile(`${dir}/cpu.cfs_period_us`, String(q.periodUs));
      await Deno.writeTextFile(`${dir}/cpu.cfs_quota_us`, String(q.quotaUs));
    } else {
      await Deno.writeTextFile(`${dir}/cpu.max`, cpuMaxLine(q));
    }
    logger.info("QEMU cgroup CPU quota set", { dir, milliCpu, quotaUs: q.quotaUs });
  };
  await setCpu(initialMilliCpu);
  const procs = version === 1 ? `${dir}/cgroup.procs` : `${dir}/cgroup.procs`;
  return {
    dir,
    version,
    setCpu,
    execPrefix: ["sh", "-c", `echo $$ > '${procs}' && exec "$@"`, "neonvm-qemu"],
  };
}
