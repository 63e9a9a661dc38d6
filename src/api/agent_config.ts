/**
 * The autoscaler-agent's configuration file (reference §3.2) with the defaults shipped in the
 * reference's `autoscaler-agent/config_map.yaml`, plus the per-VM ScalingConfig overrides carried
 * by the `autoscaling.neon.tech/config` annotation and the `autoscaling.neon.tech/bounds`
 * annotation. Unknown fields are rejected with their path.
 * Contracts only: zod schemas and pure helpers, no I/O.
 * @module
 */
import { z } from "zod";
import { ParseError } from "../lib/errors.ts";
import { ResourcesSchema } from "./quantity.ts";
import { BoundsAnnotationSchema, ScalingConfigAnnotationSchema } from "./annotations.ts";

const positive = () => z.number().positive();
const positiveInt = () => z.number().int().positive();
const port = () => z.number().int().min(1).max(65535);

/** Per-VM scaling knobs; every field required (this is the agent-wide default). */
export const ScalingConfigSchema = z.strictObject({
  loadAverageFractionTarget: z.number().min(0).lt(2),
  memoryUsageFractionTarget: z.number().min(0).lt(1),
  memoryTotalFractionTarget: z.number().min(0).lt(1),
  enableLFCMetrics: z.boolean(),
  lfcUseLargestWindow: z.boolean().default(false),
  lfcToMemoryRatio: z.number().min(0),
  lfcWindowSizeMinutes: z.number().int().min(2),
  lfcMinWaitBeforeDownscaleMinutes: z.number().int().min(0),
  cpuStableZoneRatio: z.number().min(0),
  cpuMixedZoneRatio: z.number().min(0),
}).refine(
  // Why: the reference panics on these at runtime (EstimateTrueWorkingSetSize); reject up front.
  (c) => c.lfcMinWaitBeforeDownscaleMinutes - 1 >= c.lfcWindowSizeMinutes - 1,
  {
    message: "lfcMinWaitBeforeDownscaleMinutes must be at least lfcWindowSizeMinutes",
    path: ["lfcMinWaitBeforeDownscaleMinutes"],
  },
);
/** Effective scaling knobs of one VM. */
export type ScalingConfig = z.infer<typeof ScalingConfigSchema>;

/**
 * The `autoscaling.neon.tech/config` annotation: any subset of ScalingConfig fields. One schema
 * for every reader, defined with the other annotations (unknown keys ignored, as Go's
 * `json.Unmarshal` does).
 */
export const ScalingConfigOverridesSchema = ScalingConfigAnnotationSchema;
/** Field-wise overrides of the default ScalingConfig. */
export type ScalingConfigOverrides = z.infer<typeof ScalingConfigOverridesSchema>;

/** Applies per-VM overrides to the defaults, field by field. */
export function withOverrides(
  defaults: ScalingConfig,
  overrides: ScalingConfigOverrides | undefined,
): ScalingConfig {
  if (overrides === undefined) return defaults;
  const out: Record<string, unknown> = { ...defaults };
  for (const [k, v] of Object.entries(overrides)) if (v !== undefined) out[k] = v;
  const merged = out as ScalingConfig;
  // An override may break the estimator's invariants (a window of at least 2 minutes, a wait no
  // shorter than the window); fall back to the nearest values it accepts.
  const window = Math.max(2, merged.lfcWindowSizeMinutes);
  return {
    ...merged,
    lfcWindowSizeMinutes: window,
    lfcMinWaitBeforeDownscaleMinutes: Math.max(window, merged.lfcMinWaitBeforeDownscaleMinutes),
  };
}

/** `{"min":{"cpu","mem"},"max":{"cpu","mem"}}` of the `autoscaling.neon.tech/bounds` annotation. */
export const VmBoundsAnnotationSchema = BoundsAnnotationSchema;
/** Decoded bounds annotation: MilliCPU and bytes. */
export type VmBoundsAnnotation = z.infer<typeof VmBoundsAnnotationSchema>;

const RateSchema = z.strictObject({
  intervalSeconds: positive(),
  threshold: positiveInt(),
});

const HttpClientSchema = z.strictObject({
  url: z.string().min(1),
  pushEverySeconds: positive(),
  pushRequestTimeoutSeconds: positive(),
  maxBatchSize: positiveInt(),
});
const S3ClientSchema = z.strictObject({
  bucket: z.string().min(1),
  region: z.string().min(1),
  prefixInBucket: z.string().optional(),
  endpoint: z.string().optional(),
  pushEverySeconds: positive(),
  pushRequestTimeoutSeconds: positive(),
  maxBatchSize: positiveInt(),
});
const AzureClientSchema = z.strictObject({
  endpoint: z.string().min(1),
  container: z.string().min(1),
  prefixInContainer: z.string().optional(),
  pushEverySeconds: positive(),
  pushRequestTimeoutSeconds: positive(),
  maxBatchSize: positiveInt(),
});
/**
 * Local output for scaling events (our addition, not in the reference): JSON lines appended to a
 * file. Why: this project has no object store; a file or an HTTP endpoint stands in for s3/azure.
 */
const FileClientSchema = z.strictObject({
  path: z.string().min(1),
  pushEverySeconds: positive(),
  maxBatchSize: positiveInt(),
});

const ClientsSchema = z.strictObject({
  http: HttpClientSchema.optional(),
  s3: S3ClientSchema.optional(),
  azureBlob: AzureClientSchema.optional(),
  file: FileClientSchema.optional(),
});

const nonZeroResources = ResourcesSchema.refine((r) => r.vCPUs > 0 && r.mem > 0, {
  message: "computeUnit fields must be non-zero",
});

/** The whole `config.json` of the agent; omitted sections take the config_map defaults. */
export const AgentConfigSchema = z.strictObject({
  refereshStateIntervalSeconds: positive().default(5),
  scaling: z.strictObject({
    computeUnit: nonZeroResources.prefault({ vCPUs: 0.25, mem: "1Gi" }),
    defaultConfig: ScalingConfigSchema.prefault({
      loadAverageFractionTarget: 0.9,
      memoryUsageFractionTarget: 0.75,
      memoryTotalFractionTarget: 0.9,
      enableLFCMetrics: false,
      lfcUseLargestWindow: false,
      lfcToMemoryRatio: 0.75,
      lfcWindowSizeMinutes: 5,
      lfcMinWaitBeforeDownscaleMinutes: 5,
      cpuStableZoneRatio: 0,
      cpuMixedZoneRatio: 0,
    }),
    /**
     * Our extension, not in the reference (agent-wide only, never in the per-VM annotation, whose
     * wire format stays the reference's): a downscale stabilization window like Kubernetes HPA's
     * `scaleDown.stabilizationWindowSeconds`. A decrease is limited to the highest desired
     * resources of the last this-many seconds. 0 (the default) is exactly the reference.
     */
    downscaleStabilizationSeconds: z.number().min(0).max(3600).default(0),
  }).prefault({}),
  billing: z.strictObject({
    cpuMetricName: z.string().min(1).default("effective_compute_seconds"),
    activeTimeMetricName: z.string().min(1).default("active_time_seconds"),
    collectEverySeconds: positive().default(4),
    accumulateEverySeconds: positive().default(24),
    clients: ClientsSchema.prefault({}),
  }).prefault({}),
  scalingEvents: z.strictObject({
    cuMultiplier: positive().default(0.25),
    rereportThreshold: positive().default(0.25),
    regionName: z.string().min(1).default("replaceme"),
    clients: ClientsSchema.prefault({}),
  }).prefault({}),
  monitor: z.strictObject({
    serverPort: port().default(10301),
    responseTimeoutSeconds: positive().default(5),
    connectionTimeoutSeconds: positive().default(4),
    connectionRetryMinWaitSeconds: positive().default(5),
    unhealthyAfterSilenceDurationSeconds: positive().default(20),
    unhealthyStartupGracePeriodSeconds: positive().default(20),
    maxHealthCheckSequentialFailuresSeconds: positive().default(30),
    retryDeniedDownscaleSeconds: positive().default(5),
    requestedUpscaleValidSeconds: positive().default(10),
    retryFailedRequestSeconds: positive().default(3),
    maxFailedRequestRate: RateSchema.prefault({ intervalSeconds: 120, threshold: 2 }),
  }).prefault({}),
  metrics: z.strictObject({
    system: z.strictObject({
      port: port().default(9100),
      requestTimeoutSeconds: positive().default(2),
      secondsBetweenRequests: positive().default(5),
    }).prefault({}),
    lfc: z.strictObject({
      port: port().default(9499),
      requestTimeoutSeconds: positive().default(5),
      secondsBetweenRequests: positive().default(15),
    }).prefault({}),
  }).prefault({}),
  scheduler: z.strictObject({
    schedulerName: z.string().min(1).default("autoscale-scheduler"),
    requestTimeoutSeconds: positive().default(2),
    requestAtLeastEverySeconds: positive().default(15),
    retryFailedRequestSeconds: positive().default(3),
    retryDeniedUpscaleSeconds: positive().default(2),
    requestPort: port().default(10299),
    maxFailedRequestRate: RateSchema.prefault({ intervalSeconds: 120, threshold: 5 }),
  }).prefault({}),
  dumpState: z.strictObject({
    port: port(),
    timeoutSeconds: positive(),
  }).optional().default({ port: 10300, timeoutSeconds: 5 }),
  neonvm: z.strictObject({
    requestTimeoutSeconds: positive().default(10),
    retryFailedRequestSeconds: positive().default(5),
    maxFailedRequestRate: RateSchema.prefault({ intervalSeconds: 120, threshold: 2 }),
  }).prefault({}),
});
/** The decoded agent configuration, with defaults filled in. */
export type AgentConfig = z.infer<typeof AgentConfigSchema>;

/** The config with every default, as the reference's config_map ships it. */
export function defaultAgentConfig(): AgentConfig {
  return AgentConfigSchema.parse({});
}

/** Parses a decoded JSON config; throws ParseError naming every bad path on one line. */
export function parseAgentConfig(input: unknown): AgentConfig {
  const r = AgentConfigSchema.safeParse(input);
  if (r.success) return r.data;
  const issues = r.error.issues.flatMap((i) => {
    const base = i.path.map(String).join(".");
    // Unknown keys are reported on their parent; name each key so the path is complete.
    if (i.code === "unrecognized_keys") {
      return i.keys.map((k) => ({ path: base ? `${base}.${k}` : k, message: "unknown field" }));
    }
    return [{ path: base || "(root)", message: i.message }];
  });
  throw new ParseError(
    `Invalid agent config: ${issues.map((i) => `${i.path}: ${i.message}`).join("; ")}`,
    { paths: issues.map((i) => i.path) },
  );
}
