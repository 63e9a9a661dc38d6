/**
 * The two-resource vector the scheduler accounts in (MilliCPU and bytes), overcommit scaling, and
 * scaling-unit rounding. Pure: no I/O, no clocks.
 * @module
 */
import type { Bytes, MilliCpu } from "../../api/quantity.ts";

/** CPU and memory amounts. */
export interface Res {
  /** MilliCPU. */
  readonly cpu: MilliCpu;
  /** Bytes. */
  readonly mem: Bytes;
}

/** Zero of both. */
export const ZERO: Res = Object.freeze({ cpu: 0, mem: 0 });

/** Overcommit factors in thousandths (1000 = no overcommit). */
export const NO_OVERCOMMIT: Res = Object.freeze({ cpu: 1000, mem: 1000 });

/** Field-wise sum. */
export function add(a: Res, b: Res): Res {
  return { cpu: a.cpu + b.cpu, mem: a.mem + b.mem };
}

/** Field-wise difference (may be negative). */
export function sub(a: Res, b: Res): Res {
  return { cpu: a.cpu - b.cpu, mem: a.mem - b.mem };
}

/** Field-wise maximum. */
export function max(a: Res, b: Res): Res {
  return { cpu: Math.max(a.cpu, b.cpu), mem: Math.max(a.mem, b.mem) };
}

/** Field-wise minimum. */
export function min(a: Res, b: Res): Res {
  return { cpu: Math.min(a.cpu, b.cpu), mem: Math.min(a.mem, b.mem) };
}

/** Field-wise `max(0, a − b)`. */
export function excess(a: Res, b: Res): Res {
  return { cpu: Math.max(0, a.cpu - b.cpu), mem: Math.max(0, a.mem - b.mem) };
}

/** True when every field of `a` is ≤ the same field of `b`. */
export function fitsIn(a: Res, b: Res): boolean {
  return a.cpu <= b.cpu && a.mem <= b.mem;
}

/** True when both fields are equal. */
export function equal(a: Res, b: Res): boolean {
  return a.cpu === b.cpu && a.mem === b.mem;
}

/** True when some field is positive. */
export function anyPositive(a: Res): boolean {
  return a.cpu > 0 || a.mem > 0;
}

/**
 * What a pod's raw amount costs its node under overcommit: `floor(raw × 1000 / factorMilli)`
 * (reference §4.2). A factor of 2000 makes a VM count half of what it reserves.
 */
export function toNodeUnits(raw: Res, overcommitMilli: Res): Res {
  return {
    cpu: Math.floor((raw.cpu * 1000) / overcommitMilli.cpu),
    mem: nodeBytes(raw.mem, overcommitMilli.mem),
  };
}

function nodeBytes(raw: Bytes, factorMilli: number): Bytes {
  // Bytes × 1000 can exceed 2^53 for large memories; use bigint when it might.
  if (raw < 9e12) return Math.floor((raw * 1000) / factorMilli);
  return Number((BigInt(raw) * 1000n) / BigInt(factorMilli));
}

/** How much raw amount `room` node units allow: `floor(room × factorMilli / 1000)`. */
export function fromNodeUnits(room: Res, overcommitMilli: Res): Res {
  return {
    cpu: Math.floor((room.cpu * overcommitMilli.cpu) / 1000),
    mem: room.mem < 9e12
      ? Math.floor((room.mem * overcommitMilli.mem) / 1000)
      : Number((BigInt(room.mem) * BigInt(overcommitMilli.mem)) / 1000n),
  };
}

/** Rounds `amount` down to a multiple of `unit` (unit 0 leaves it unchanged). */
export function floorToMultiple(amount: number, unit: number): number {
  if (unit <= 0) return amount;
  return Math.floor(amount / unit) * unit;
}

/** Formats for messages: `cpu 1250m, mem 4Gi`-like but plain numbers. */
export function describe(r: Res): string {
  return `cpu ${r.cpu}m, mem ${r.mem} bytes`;
}
