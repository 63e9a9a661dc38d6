/**
 * Scaling events written by the agent (reference §1.7): one JSON object per line with
 * `timestamp`, `region`, `endpoint_id`, `kind` ("actual" | "hypothetical"), `current_cu` and
 * `target_cu` in milli-CU, and optional float `goalComponents`. Zod schema (for readers and
 * tests) and an encoder producing the reference's field order.
 * Contracts only: no I/O.
 * @module
 */
import { z } from "zod";

/** Goal components in CU × cuMultiplier; an absent part is omitted. */
export const GoalComponentsSchema = z.object({
  cpu: z.number().optional(),
  mem: z.number().optional(),
  lfc: z.number().optional(),
});
/** Goal components. */
export type GoalComponents = z.infer<typeof GoalComponentsSchema>;

/** One scaling event. */
export const ScalingEventSchema = z.object({
  timestamp: z.iso.datetime({ offset: true }),
  region: z.string(),
  endpoint_id: z.string(),
  kind: z.enum(["actual", "hypothetical"]),
  current_cu: z.number().int().nonnegative(),
  target_cu: z.number().int().nonnegative(),
  goalComponents: GoalComponentsSchema.optional(),
});
/** A scaling event. */
export type ScalingEvent = z.infer<typeof ScalingEventSchema>;

/** Milli-CU as the reference writes them: `round(1000 · cu · cuMultiplier)`. */
export function milliCu(cu: number, cuMultiplier: number): number {
  return Math.round(1000 * cu * cuMultiplier);
}

/** Encodes one event as a JSON line (no trailing newline), fields in the reference's order. */
export function encodeScalingEvent(e: ScalingEvent): string {
  const out: Record<string, unknown> = {
    timestamp: e.timestamp,
    region: e.region,
    endpoint_id: e.endpoint_id,
    kind: e.kind,
    current_cu: e.current_cu,
    target_cu: e.target_cu,
  };
  if (e.goalComponents !== undefined) {
    const g: Record<string, number> = {};
    if (e.goalComponents.cpu !== undefined) g.cpu = e.goalComponents.cpu;
    if (e.goalComponents.mem !== undefined) g.mem = e.goalComponents.mem;
    if (e.goalComponents.lfc !== undefined) g.lfc = e.goalComponents.lfc;
    out.goalComponents = g;
  }
  return JSON.stringify(out);
}
