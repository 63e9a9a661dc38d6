/**
 * When to emit scaling events (§1.7): "actual" when a NeonVM patch starts between whole
 * compute-unit multiples; "hypothetical" when a goal is computed with all metrics, skipped when
 * the target is unchanged and every component moved less than the re-report threshold.
 * Pure: no I/O; the io layer stamps time and writes.
 * @module
 */
import type { GoalComponents } from "../../api/scaling_event.ts";
import type { Resources } from "../../api/quantity.ts";
import type { GoalCu } from "./goal_cu.ts";

/** `n` when `r` is exactly `n` compute units, else undefined. */
export function wholeCu(r: Resources, cu: Resources): number | undefined {
  if (r.vCPUs % cu.vCPUs !== 0 || r.mem % cu.mem !== 0) return undefined;
  const n = r.vCPUs / cu.vCPUs;
  return n === r.mem / cu.mem ? n : undefined;
}

/** The last hypothetical event reported for a VM. */
export interface LastHypothetical {
  /** Target CU reported. */
  readonly targetCu: number;
  /** Components reported (already multiplied). */
  readonly parts: GoalComponents;
}

/** A hypothetical event to emit, or undefined when it would repeat the last one. */
export function hypotheticalEvent(
  goal: GoalCu,
  using: Resources,
  cu: Resources,
  cuMultiplier: number,
  rereportThreshold: number,
  last: LastHypothetical | undefined,
): { currentCu: number; next: LastHypothetical } | undefined {
  if (!goal.hasAllMetrics) return undefined;
  const currentCu = wholeCu(using, cu);
  if (currentCu === undefined) return undefined;
  const scale = (x: number | undefined) => x === undefined ? undefined : x * cuMultiplier;
  const parts: GoalComponents = {
    ...(goal.parts.cpu !== undefined ? { cpu: scale(goal.parts.cpu)! } : {}),
    ...(goal.parts.mem !== undefined ? { mem: scale(goal.parts.mem)! } : {}),
    ...(goal.parts.lfc !== undefined ? { lfc: scale(goal.parts.lfc)! } : {}),
  };
  const next = { targetCu: goal.goalCu, parts };
  if (last !== undefined && last.targetCu === next.targetCu) {
    const close = (a: number | undefined, b: number | undefined) =>
      (a === undefined) === (b === undefined) &&
      (a === undefined || Math.abs(a - b!) < rereportThreshold);
    if (
      close(last.parts.cpu, parts.cpu) && close(last.parts.mem, parts.mem) &&
      close(last.parts.lfc, parts.lfc)
    ) return undefined;
  }
  return { currentCu, next };
}
