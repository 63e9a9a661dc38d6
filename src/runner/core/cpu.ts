/**
 * CPU arithmetic of the runner: the QEMU cgroup quota for a fractional CPU amount (reference §6.6:
 * limit = use × 4, period 100 ms) and what `/cpu_current` answers in SysfsScaling mode (§6.5).
 * Pure: no I/O.
 * @module
 */
import type { MilliCpu } from "../../api/quantity.ts";

/** The reference's CPU overcommit factor for the QEMU cgroup. */
export const CPU_LIMIT_OVERCOMMIT_FACTOR = 4;
/** CFS period, microseconds. */
export const CPU_PERIOD_US = 100_000;

/** CFS quota and period for a CPU amount. */
export interface CpuQuota {
  /** Quota per period, microseconds. */
  readonly quotaUs: number;
  /** Period, microseconds. */
  readonly periodUs: number;
}

/** Quota for `milliCpu` of use: `use × 4` CPUs of quota per 100 ms period. */
export function cgroupCpuQuota(milliCpu: MilliCpu): CpuQuota {
  const limitMilli = milliCpu * CPU_LIMIT_OVERCOMMIT_FACTOR;
  return {
    quotaUs: Math.max(1000, Math.round((limitMilli * CPU_PERIOD_US) / 1000)),
    periodUs: CPU_PERIOD_US,
  };
}

/** The cgroup v2 `cpu.max` line for a quota. */
export function cpuMaxLine(q: CpuQuota): string {
  return `${q.quotaUs} ${q.periodUs}`;
}

/**
 * SysfsScaling `/cpu_current`: the stored (last requested) amount unless the guest's online CPU
 * count disagrees with it in whole CPUs, in which case the guest's count wins.
 */
export function sysfsCpuCurrent(storedMilli: MilliCpu, daemonMilli: MilliCpu): MilliCpu {
  return Math.ceil(storedMilli / 1000) !== Math.ceil(daemonMilli / 1000)
    ? daemonMilli
    : storedMilli;
}

/**
 * The QEMU cgroup path: `<own>/neonvm-qemu-<pod>` where `own` comes from /proc/self/cgroup (a v1
 * line with the `cpu` controller, else the v2 `0::` line); `/` counts as empty.
 */
export function qemuCgroupPath(procSelfCgroup: string, podName: string): {
  readonly version: 1 | 2;
  readonly path: string;
} {
  let v1: string | undefined;
  let v2: string | undefined;
  for (const line of procSelfCgroup.split("\n")) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line.trim());
    if (!m) continue;
    const [, id, controllers = "", path = ""] = m;
    if (id === "0" && controllers === "") v2 = path;
    else if (controllers.split(",").includes("cpu")) v1 = path;
  }
  const own = v1 ?? v2 ?? "";
  const base = own === "/" ? "" : own.replace(/\/+$/, "");
  return { version: v1 !== undefined ? 1 : 2, path: `${base}/neonvm-qemu-${podName}` };
}
