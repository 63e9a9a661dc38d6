/**
 * The autoscale-scheduler's config file (reference §4.1,
 * `/etc/scheduler-plugin-config/autoscale-enforcer-config.json`): zod schema with the reference
 * defaults, unknown fields rejected. Fields the Go plugin had for its framework internals are
 * accepted with the same meaning where it still exists here. Contracts only: no I/O.
 * @module
 */
import { z } from "zod";
import type { ParseResult } from "./permit.ts";
import { safeParseWith } from "./permit.ts";

const unit = z.number().min(0).max(1);
const positiveInt = z.number().int().positive();

/** Scoring parameters (§4.4); each in [0, 1]. */
export const ScoringConfigSchema = z.strictObject({
  minUsageScore: unit.default(0.5),
  maxUsageScore: unit.default(0),
  scorePeak: unit.default(0.8),
  randomize: z.boolean().default(true),
});
/** Scoring parameters. */
export type ScoringConfig = z.infer<typeof ScoringConfigSchema>;

/** The whole config file. */
export const SchedulerConfigSchema = z.strictObject({
  /** Fraction of a node's allocatable above which VMs are migrated away; 0 < w ≤ 1. */
  watermark: z.number().gt(0).max(1).default(0.9),
  scoring: ScoringConfigSchema.default({
    minUsageScore: 0.5,
    maxUsageScore: 0,
    scorePeak: 0.8,
    randomize: true,
  }),
  /** Only pods with this `spec.schedulerName` are handled. */
  schedulerName: z.string().min(1).default("autoscale-scheduler"),
  /**
   * The reference's reconcile worker count, which bounds its concurrent VM patches; here the
   * most VirtualMachine API calls the annotation writer has in flight at once.
   */
  reconcileWorkers: positiveInt.default(16),
  logSuccessiveFailuresThreshold: positiveInt.default(10),
  startupEventHandlingTimeoutSeconds: positiveInt.default(15),
  patchRetryWaitSeconds: positiveInt.default(1),
  k8sCRUDTimeoutSeconds: positiveInt.default(1),
  /** Metric label name → node label whose value it takes. */
  nodeMetricLabels: z.record(z.string(), z.string()).default({}),
  /** Namespaces whose pods count for filtering only (e.g. overprovisioning pause pods). */
  ignoredNamespaces: z.array(z.string()).default([]),
});
/** Decoded scheduler config with defaults applied. */
export type SchedulerConfig = z.infer<typeof SchedulerConfigSchema>;

/** The reference defaults, as one object. */
export const DEFAULT_SCHEDULER_CONFIG: SchedulerConfig = SchedulerConfigSchema.parse({});

/** Parses a decoded JSON value as the scheduler config; never throws. */
export function parseSchedulerConfig(input: unknown): ParseResult<SchedulerConfig> {
  // `randomize` has no json tag in Go and matches case-insensitively; accept `Randomize` too.
  if (isRecord(input) && isRecord(input.scoring) && "Randomize" in input.scoring) {
    const { Randomize, ...rest } = input.scoring;
    input = { ...input, scoring: { ...rest, randomize: Randomize } };
  }
  return safeParseWith(SchedulerConfigSchema, "scheduler config", input);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
