/**
 * The demo's recorded timeline and what it says: points of VM state and guest metrics over time,
 * conversion to the rendered samples, and reaction times (from a load step's start to the agent's
 * patch of `spec`, and to the guest having the new resources in `status`). Pure: no I/O.
 * @module
 */
import type { Sample } from "./render.ts";

/** One recorded moment. */
export interface Point {
  /** Seconds since recording started. */
  tSec: number;
  /** Demo stage at that moment. */
  stage: string;
  /** Guest 1-minute load average. */
  loadAvg1m: number | undefined;
  /** Guest memory in use (total − available + 100 MiB, as the agent counts it), bytes. */
  memUsedBytes: number | undefined;
  /** spec CPU (the agent's patch), MilliCPU. */
  cpuUseMilli: number;
  /** spec memory, bytes. */
  memUseBytes: number;
  /** status.cpus, MilliCPU. */
  cpuStatusMilli: number | undefined;
  /** status.memorySize, bytes. */
  memStatusBytes: number | undefined;
}

/** Points as the renderer's samples (allocated = what the guest has, else what spec asks). */
export function toSamples(points: readonly Point[]): Sample[] {
  return points.map((p) => ({
    tSec: p.tSec,
    stage: p.stage,
    loadAvg1m: p.loadAvg1m,
    memUsedBytes: p.memUsedBytes,
    cpuMilli: p.cpuStatusMilli ?? p.cpuUseMilli,
    memBytes: p.memStatusBytes ?? p.memUseBytes,
  }));
}

/** How fast the VM reacted to one stage. */
export interface Reaction {
  /** Stage name. */
  stage: string;
  /** `up` when the stage adds load, `down` when it removes it. */
  direction: "up" | "down";
  /** Which resource moved first in that direction. */
  resource: "cpu" | "memory" | "none";
  /** Seconds from the stage start to the first spec change in that direction. */
  patchSec: number | undefined;
  /** Seconds from the stage start to the first status change in that direction. */
  guestSec: number | undefined;
  /** Seconds from the stage start until spec reached `target` (if given). */
  targetSec: number | undefined;
}

/**
 * Reaction of the stage starting at the first point named `stage`: the first later point (in that
 * stage or after) whose spec/status CPU or memory moved in `direction` from the values at the
 * stage start. `target` (optional) is a CPU value whose reaching is timed too.
 */
export function reactionOf(
  points: readonly Point[],
  stage: string,
  direction: "up" | "down",
  targetCpuMilli?: number,
): Reaction | undefined {
  const i0 = points.findIndex((p) => p.stage === stage);
  if (i0 < 0) return undefined;
  const p0 = points[i0]!;
  const moved = (a: number | undefined, b: number | undefined) =>
    a !== undefined && b !== undefined && (direction === "up" ? a > b : a < b);
  let patchSec: number | undefined;
  let guestSec: number | undefined;
  let targetSec: number | undefined;
  let resource: Reaction["resource"] = "none";
  for (const p of points.slice(i0 + 1)) {
    const dt = p.tSec - p0.tSec;
    if (patchSec === undefined) {
      if (moved(p.cpuUseMilli, p0.cpuUseMilli)) [patchSec, resource] = [dt, "cpu"];
      else if (moved(p.memUseBytes, p0.memUseBytes)) [patchSec, resource] = [dt, "memory"];
    }
    if (
      guestSec === undefined &&
      (moved(p.cpuStatusMilli, p0.cpuStatusMilli) || moved(p.memStatusBytes, p0.memStatusBytes))
    ) guestSec = dt;
    if (
      targetSec === undefined && targetCpuMilli !== undefined && p.cpuUseMilli === targetCpuMilli
    ) {
      targetSec = dt;
    }
  }
  return { stage, direction, resource, patchSec, guestSec, targetSec };
}

/** p-th percentile (0..100) by nearest rank; undefined for no values. */
export function percentile(values: readonly number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const s = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * s.length);
  return s[Math.min(s.length - 1, Math.max(0, rank - 1))];
}
