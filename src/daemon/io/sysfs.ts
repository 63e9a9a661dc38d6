/**
 * CPU hotplug through sysfs (`/sys/devices/system/cpu`): read the online/offline lists and write
 * `cpu<N>/online`. The root is a parameter so tests run on a fake tree. Must not decide which
 * CPUs to change: core/cpu_plan.ts does.
 * @module
 */
import {
  type CpuChange,
  parseCpuList,
  planCpuChanges,
  targetOnlineCpus,
} from "../core/cpu_plan.ts";

/** Default sysfs CPU directory. */
export const SYSFS_CPU_ROOT = "/sys/devices/system/cpu";

/** Online and onlinable CPUs as sysfs reports them. */
export interface CpuState {
  /** Online CPU numbers. */
  readonly online: number[];
  /** Offline CPUs that have a `cpu<N>/online` switch (present, hot-pluggable). */
  readonly available: number[];
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Reads the CPU state under `root`. */
export async function readCpuState(root = SYSFS_CPU_ROOT): Promise<CpuState> {
  const online = parseCpuList(await Deno.readTextFile(`${root}/online`));
  let offline: number[] = [];
  try {
    offline = parseCpuList(await Deno.readTextFile(`${root}/offline`));
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const available: number[] = [];
  for (const c of offline) if (await exists(`${root}/cpu${c}/online`)) available.push(c);
  return { online, available };
}

/** Online CPUs × 1000, what `GET /cpu` answers. */
export async function onlineMilliCpu(root = SYSFS_CPU_ROOT): Promise<number> {
  return (await readCpuState(root)).online.length * 1000;
}

/**
 * Brings the online CPU count to ceil(milliCpu / 1000). Returns the writes made, in order.
 * Throws when a write fails (the kernel refuses, or the CPU is missing).
 */
export async function setOnlineCpus(
  milliCpu: number,
  root = SYSFS_CPU_ROOT,
): Promise<CpuChange[]> {
  const state = await readCpuState(root);
  const plan = planCpuChanges(state.online, state.available, targetOnlineCpus(milliCpu));
  for (const ch of plan) {
    await Deno.writeTextFile(`${root}/cpu${ch.cpu}/online`, ch.online ? "1" : "0");
  }
  return plan;
}
