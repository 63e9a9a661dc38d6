/**
 * vm-monitor configuration: the reference's flags (`--addr`, `--cgroup`, `--pgconnstr`) plus a few
 * of ours, parsed with `node:util` parseArgs and validated with zod. Must not read files or the
 * environment (main.ts passes argv in).
 * @module
 */
import { parseArgs } from "node:util";
import { z } from "zod";
import { ConfigError } from "../lib/errors.ts";

/** The workload cgroup the vm-builder's init creates and starts Postgres in. */
export const DEFAULT_CGROUP = "neon-postgres";

const AddrSchema = z.string().regex(/^(\[[0-9a-fA-F:]+\]|[^:\s]+):(\d{1,5})$/, {
  message: "expected host:port, e.g. 0.0.0.0:10301",
}).transform((s, ctx) => {
  const i = s.lastIndexOf(":");
  const host = s.slice(0, i).replace(/^\[|\]$/g, "");
  const port = Number(s.slice(i + 1));
  if (port < 0 || port > 65535) {
    ctx.addIssue({ code: "custom", message: `port ${port} out of range` });
    return z.NEVER;
  }
  return { host, port };
});

const BoolFlag = z.enum(["true", "false"]).transform((v) => v === "true");

/** The validated configuration. */
export const MonitorConfigSchema = z.object({
  addr: AddrSchema.default({ host: "0.0.0.0", port: 10301 }),
  cgroup: z.string().min(1).optional(),
  cgroupRoot: z.string().min(1).default("/sys/fs/cgroup"),
  cgroupLimits: BoolFlag.default(true),
  pgconnstr: z.string().min(1).optional(),
  psql: z.string().min(1).default("psql"),
  psqlTimeoutMs: z.coerce.number().int().min(100).max(600_000).default(5_000),
  meminfo: z.string().min(1).default("/proc/meminfo"),
  sampleIntervalMs: z.coerce.number().int().min(10).max(10_000).default(100),
  logLevel: z.enum(["debug", "info", "warn", "error"]).default("info"),
});
/** The validated configuration. */
export type MonitorConfig = z.infer<typeof MonitorConfigSchema> & {
  /** True when `--cgroup` was given explicitly (a missing cgroup is then fatal). */
  readonly cgroupExplicit: boolean;
};

/** Usage text for `--help`. */
export const USAGE =
  `usage: monitor [--addr HOST:PORT] [--cgroup NAME] [--pgconnstr CONNSTR] [options]
  --addr HOST:PORT        listen address (default 0.0.0.0:10301; serves ws://…/monitor)
  --cgroup NAME           cgroup v2 to watch (default ${DEFAULT_CGROUP}; if not given and absent,
                          the monitor runs without a cgroup)
  --cgroup-root DIR       cgroup v2 mount (default /sys/fs/cgroup)
  --cgroup-limits BOOL    write memory.high/memory.max on resize (default true)
  --pgconnstr CONNSTR     Postgres to size the file cache of (enables LFC management)
  --psql PATH             psql executable (default psql)
  --psql-timeout-ms N     time limit of one psql call (default 5000; raise it for slow guests)
  --meminfo PATH          meminfo file for the initial size (default /proc/meminfo)
  --sample-interval-ms N  cgroup sampling period (default 100)
  --log-level LEVEL       debug|info|warn|error (default info)`;

/** Parses argv into a config; throws {@linkcode ConfigError} naming every bad flag. */
export function parseMonitorArgs(argv: readonly string[]): MonitorConfig {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        addr: { type: "string" },
        cgroup: { type: "string" },
        "cgroup-root": { type: "string" },
        "cgroup-limits": { type: "string" },
        pgconnstr: { type: "string" },
        psql: { type: "string" },
        "psql-timeout-ms": { type: "string" },
        meminfo: { type: "string" },
        "sample-interval-ms": { type: "string" },
        "log-level": { type: "string" },
        help: { type: "boolean" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (cause) {
    throw new ConfigError(`Invalid flags: ${cause instanceof Error ? cause.message : cause}`, {
      cause,
    });
  }
  if (values.help === true) throw new ConfigError(USAGE);
  const parsed = MonitorConfigSchema.safeParse({
    addr: values.addr,
    cgroup: values.cgroup ?? DEFAULT_CGROUP,
    cgroupRoot: values["cgroup-root"],
    cgroupLimits: values["cgroup-limits"],
    pgconnstr: values.pgconnstr,
    psql: values.psql,
    psqlTimeoutMs: values["psql-timeout-ms"],
    meminfo: values.meminfo,
    sampleIntervalMs: values["sample-interval-ms"],
    logLevel: values["log-level"],
  });
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `--${flagName(i.path)}: ${i.message}`);
    throw new ConfigError(`Invalid configuration: ${issues.join("; ")}`);
  }
  return Object.freeze({ ...parsed.data, cgroupExplicit: values.cgroup !== undefined });
}

function flagName(path: readonly PropertyKey[]): string {
  return String(path[0] ?? "?").replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
