/**
 * neonvm-controller configuration: the reference's flags (§5.1) plus ours (runner command,
 * overheads, kubeconfig), parsed with `node:util` parseArgs and validated with zod into a frozen
 * config. Go-style boolean flags (`--leader-elect`, `--leader-elect=false`) are accepted. Must not
 * read files or the environment itself: main.ts passes argv and env in.
 * @module
 */
import { parseArgs } from "node:util";
import { z } from "zod";
import { parseBytes, parseMilliCpu } from "../api/quantity.ts";
import { CpuScalingModeSchema } from "../api/virtualmachine.ts";
import { ConfigError } from "../lib/errors.ts";

const BindSchema = z.string().regex(/^(\[[0-9a-fA-F:]+\]|[^:\s]*):(\d{1,5})$/, {
  message: "expected [host]:port, e.g. :8080",
}).transform((s) => {
  const i = s.lastIndexOf(":");
  return {
    hostname: s.slice(0, i).replace(/^\[|\]$/g, "") || "0.0.0.0",
    port: Number(s.slice(i + 1)),
  };
});

const GO_DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const DurationMsSchema = z.string().regex(GO_DURATION, { message: "expected a duration like 15s" })
  .transform((s) => {
    const [, n, unit] = GO_DURATION.exec(s)!;
    const mult = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit as "ms" | "s" | "m" | "h"];
    return Math.round(Number(n) * mult);
  });

const MilliCpuFlag = z.string().transform((s, ctx) => {
  const v = parseMilliCpu(s);
  if (v === undefined || v < 0) {
    ctx.addIssue({ code: "custom", message: `not a CPU quantity: ${s}` });
    return z.NEVER;
  }
  return v;
});
const BytesFlag = z.string().transform((s, ctx) => {
  const v = parseBytes(s);
  if (v === undefined || v < 0) {
    ctx.addIssue({ code: "custom", message: `not a byte quantity: ${s}` });
    return z.NEVER;
  }
  return v;
});

/** The validated configuration. */
export const ControllerConfigSchema = z.object({
  metricsBindAddress: BindSchema.prefault(":8080"),
  healthProbeBindAddress: BindSchema.prefault(":8081"),
  leaderElect: z.boolean().default(false),
  leaderElectionId: z.string().min(1).default("a3b22509.neon.tech"),
  leaderElectionNamespace: z.string().optional(),
  leaseDurationMs: DurationMsSchema.default(15_000),
  renewDeadlineMs: DurationMsSchema.default(10_000),
  retryPeriodMs: DurationMsSchema.default(2_000),
  // Accepted for compatibility; requests are not rate limited (the work queue bounds them).
  k8sClientQps: z.coerce.number().positive().default(1000),
  k8sClientBurst: z.coerce.number().int().positive().default(2000),
  concurrencyLimit: z.coerce.number().int().min(1).max(1024).default(1),
  // Accepted for compatibility; validation is CEL in the CRD (D6), there is no webhook to skip.
  skipUpdateValidationFor: z.string().default(""),
  disableRunnerCgroup: z.boolean().default(false),
  defaultCpuScalingMode: CpuScalingModeSchema.default("QmpScaling"),
  useVirtioConsole: z.boolean().default(false),
  qemuDiskCacheSettings: z.string().min(1).default("cache=none"),
  memhpAutoMovableRatio: z.string().regex(/^\d+$/).default("301"),
  failurePendingPeriodMs: DurationMsSchema.default(60_000),
  failingRefreshIntervalMs: DurationMsSchema.default(60_000),
  atMostOnePod: z.boolean().default(false),
  forceRetryNotRetried: z.boolean().default(false),
  // Ours.
  runnerImage: z.string().min(1, { message: "set --runner-image or VM_RUNNER_IMAGE" }),
  runnerCommand: z.string().min(1)
    .transform((s) => s.split(/\s+/).filter((x) => x !== ""))
    .prefault("deno run --cached-only -A /app/src/runner/main.ts"),
  runnerExtraArgs: z.string().default("").transform((s) => s.split(/\s+/).filter((x) => x !== "")),
  runnerOverheadCpu: MilliCpuFlag.default(100),
  // What a runner pod holds besides guest RAM, measured under TCG: translation cache (128 MiB,
  // bounded by the runner), QEMU itself (~80 MiB), the runner process (~75 MiB) and, on the source
  // of a live migration, the 256 MiB XBZRLE cache. 256 MiB (the old default) let a guest that
  // used all of its maximum be OOM-killed by the pod's limit.
  runnerOverheadMemory: BytesFlag.default(640 * 1024 * 1024),
  runnerPrivileged: z.boolean().default(false),
  runnerCapabilities: z.string().regex(/^[A-Z_]*(,[A-Z_]+)*$/, {
    message: "expected a comma list like NET_ADMIN,SYS_ADMIN",
  }).transform((s) => s.split(",").filter((x) => x !== ""))
    .prefault("NET_ADMIN,SYS_ADMIN,SYS_RESOURCE"),
  devicePluginResources: z.boolean().default(false),
  namespace: z.string().optional(),
  kubeconfig: z.string().optional(),
  logLevel: z.enum(["debug", "info", "warn", "error"]).default("info"),
});
/** The validated configuration. */
export type ControllerConfig = Readonly<z.infer<typeof ControllerConfigSchema>>;

const STRING_FLAGS = [
  "metrics-bind-address",
  "health-probe-bind-address",
  "leader-election-id",
  "leader-election-namespace",
  "lease-duration",
  "renew-deadline",
  "retry-period",
  "k8s-client-qps",
  "k8s-client-burst",
  "concurrency-limit",
  "skip-update-validation-for",
  "default-cpu-scaling-mode",
  "qemu-disk-cache-settings",
  "memhp-auto-movable-ratio",
  "failure-pending-period",
  "failing-refresh-interval",
  "runner-image",
  "runner-command",
  "runner-extra-args",
  "runner-overhead-cpu",
  "runner-overhead-memory",
  "runner-capabilities",
  "namespace",
  "kubeconfig",
  "log-level",
] as const;
const DURATION_FLAGS: readonly string[] = [
  "lease-duration",
  "renew-deadline",
  "retry-period",
  "failure-pending-period",
  "failing-refresh-interval",
];
const BOOL_FLAGS = [
  "leader-elect",
  "disable-runner-cgroup",
  "use-virtio-console",
  "at-most-one-pod",
  "force-retry-not-retried",
  "runner-privileged",
  "device-plugin-resources",
] as const;

/** Usage text for `--help`. */
export const USAGE = `usage: controller [flags]
  reference flags: --${STRING_FLAGS.slice(0, 16).join(" --")}
                   --${BOOL_FLAGS.slice(0, 5).join(" --")}
  ours: --runner-image (env VM_RUNNER_IMAGE) --runner-command --runner-extra-args --runner-overhead-cpu
        --runner-overhead-memory --runner-capabilities --runner-privileged --device-plugin-resources --namespace
        --kubeconfig --log-level`;

function camel(flag: string): string {
  return flag.replace(/-([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

/** Parses argv (and `VM_RUNNER_IMAGE` from env); throws ConfigError naming every bad flag. */
export function parseControllerArgs(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>> = {},
): ControllerConfig {
  // Go flags accept `--b=true|false` for booleans; parseArgs only knows presence.
  const args: string[] = [];
  for (const a of argv) {
    const m = /^--?([a-z0-9-]+)=(true|false)$/.exec(a);
    if (m && (BOOL_FLAGS as readonly string[]).includes(m[1]!)) {
      if (m[2] === "true") args.push(`--${m[1]}`);
      continue;
    }
    args.push(a.replace(/^-([a-z])/, "--$1"));
  }
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        ...Object.fromEntries(STRING_FLAGS.map((f) => [f, { type: "string" as const }])),
        ...Object.fromEntries(BOOL_FLAGS.map((f) => [f, { type: "boolean" as const }])),
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (cause) {
    throw new ConfigError(`Cannot parse flags: ${(cause as Error).message}`, { cause });
  }
  const raw: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(values)) {
    if (v !== undefined) raw[camel(k) + (DURATION_FLAGS.includes(k) ? "Ms" : "")] = v;
  }
  if (raw.runnerImage === undefined && env.VM_RUNNER_IMAGE) raw.runnerImage = env.VM_RUNNER_IMAGE;
  if (raw.runnerImage === undefined) raw.runnerImage = "";
  const parsed = ControllerConfigSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ConfigError(
      `Invalid controller flags: ${
        parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")
      }`,
    );
  }
  return Object.freeze(parsed.data);
}
