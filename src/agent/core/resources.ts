/**
 * Arithmetic on `{vCPUs, mem}` Resources (MilliCPU and bytes) used by the agent's decisions:
 * per-field min/max, comparisons, compute-unit multiples and the reference's `clamp`.
 * Pure: no I/O.
 * @module
 */
import type { Resources } from "../../api/quantity.ts";

/** Per-field minimum. */
export function minRes(a: Resources, b: Resources): Resources {
  return { vCPUs: Math.min(a.vCPUs, b.vCPUs), mem: Math.min(a.mem, b.mem) };
}

/** Per-field maximum. */
export function maxRes(a: Resources, b: Resources): Resources {
  return { vCPUs: Math.max(a.vCPUs, b.vCPUs), mem: Math.max(a.mem, b.mem) };
}

/** True when both fields are equal. */
export function eqRes(a: Resources, b: Resources): boolean {
  return a.vCPUs === b.vCPUs && a.mem === b.mem;
}

/** True when some field of `a` is less than the same field of `b`. */
export function hasFieldLess(a: Resources, b: Resources): boolean {
  return a.vCPUs < b.vCPUs || a.mem < b.mem;
}

/** True when some field of `a` is greater than the same field of `b`. */
export function hasFieldGreater(a: Resources, b: Resources): boolean {
  return a.vCPUs > b.vCPUs || a.mem > b.mem;
}

/** Per-field sum. */
export function addRes(a: Resources, b: Resources): Resources {
  return { vCPUs: a.vCPUs + b.vCPUs, mem: a.mem + b.mem };
}

/** Per-field difference, floored at zero. */
export function saturatingSub(a: Resources, b: Resources): Resources {
  return { vCPUs: Math.max(0, a.vCPUs - b.vCPUs), mem: Math.max(0, a.mem - b.mem) };
}

/** `cu` times an integer factor. */
export function mulRes(cu: Resources, factor: number): Resources {
  return { vCPUs: cu.vCPUs * factor, mem: cu.mem * factor };
}

/** True when both fields are whole multiples of the compute unit's fields. */
export function isMultipleOf(r: Resources, cu: Resources): boolean {
  return r.vCPUs % cu.vCPUs === 0 && r.mem % cu.mem === 0;
}

/**
 * The reference's `clampResources`: per field, a decrease is limited below by `lower` and an
 * increase is limited above by `upper` (each optional); an unchanged field stays.
 */
export function clamp(
  current: Resources,
  desired: Resources,
  lower: Resources | undefined,
  upper: Resources | undefined,
): Resources {
  const one = (cur: number, want: number, lo: number | undefined, hi: number | undefined) => {
    if (want < cur) return lo === undefined ? want : Math.max(want, lo);
    if (want > cur) return hi === undefined ? want : Math.min(want, hi);
    return cur;
  };
  return {
    vCPUs: one(current.vCPUs, desired.vCPUs, lower?.vCPUs, upper?.vCPUs),
    mem: one(current.mem, desired.mem, lower?.mem, upper?.mem),
  };
}

/** Formats Resources for messages: `{cpu: 250m, mem: 1073741824}`. */
export function showRes(r: Resources): string {
  return `{vCPUs: ${r.vCPUs}m, mem: ${r.mem}}`;
}
