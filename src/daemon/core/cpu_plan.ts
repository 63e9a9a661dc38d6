/**
 * neonvmd's CPU planning (reference §8.1): parse sysfs CPU range lists (`0-3,5`) and decide which
 * CPUs to online or offline so that exactly ceil(milliCPU / 1000) are online. Offlines the
 * highest-numbered online CPUs first, onlines the lowest offline ones first, never touches CPU 0.
 * Pure: no I/O.
 * @module
 */

/** One sysfs write: `echo 1|0 > /sys/devices/system/cpu/cpu<N>/online`. */
export interface CpuChange {
  /** CPU number. */
  readonly cpu: number;
  /** Target state. */
  readonly online: boolean;
}

/** Parses a sysfs CPU list such as `0-3,5` (empty or whitespace → none). Throws on bad input. */
export function parseCpuList(text: string): number[] {
  const t = text.trim();
  if (t === "") return [];
  const out: number[] = [];
  for (const part of t.split(",")) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new RangeError(`not a CPU list: ${JSON.stringify(text)}`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo || hi - lo > 4096) throw new RangeError(`bad CPU range: ${part}`);
    for (let c = lo; c <= hi; c++) out.push(c);
  }
  return [...new Set(out)].sort((a, b) => a - b);
}

/** Whole CPUs wanted for a milli-CPU amount (at least 1: CPU 0 is always online). */
export function targetOnlineCpus(milliCpu: number): number {
  return Math.max(1, Math.ceil(milliCpu / 1000));
}

/**
 * The writes that bring the online count to `target`. `available` lists the offline CPUs that can
 * be onlined (present in sysfs). When there are not enough, onlines all it can.
 */
export function planCpuChanges(
  online: readonly number[],
  available: readonly number[],
  target: number,
): CpuChange[] {
  const on = [...new Set(online)].sort((a, b) => a - b);
  if (on.length > target) {
    return on.filter((c) => c !== 0).reverse().slice(0, on.length - target)
      .map((cpu) => ({ cpu, online: false }));
  }
  if (on.length < target) {
    return [...new Set(available)].filter((c) => c !== 0 && !on.includes(c))
      .sort((a, b) => a - b).slice(0, target - on.length)
      .map((cpu) => ({ cpu, online: true }));
  }
  return [];
}
