/**
 * neonvmd: the NeonVM guest daemon (reference §8.1). Flags: `-addr host:port` (required; the
 * guest's inittab uses `0.0.0.0:25183`), `-sysfs-cpu-root` (tests). Serves the CPU and file-sync
 * API over HTTP. Only this file reads flags.
 * @module
 */
import { parseArgs } from "node:util";
import { z } from "zod";
import { createLogger } from "../lib/log.ts";
import { createDaemonHandler } from "./io/http.ts";
import { SYSFS_CPU_ROOT } from "./io/sysfs.ts";

const ConfigSchema = z.object({
  addr: z.string().regex(/^[^:]*:\d{1,5}$/, { message: "expected host:port" }),
  sysfsCpuRoot: z.string().default(SYSFS_CPU_ROOT),
});

/** Normalises `-flag` to `--flag` so both spellings work, as Go's flag package allows. */
function normaliseArgs(args: readonly string[]): string[] {
  return args.map((a) => (/^-[A-Za-z]/.test(a) && !a.startsWith("--") ? `-${a}` : a));
}

if (import.meta.main) {
  const log = createLogger("daemon");
  const { values } = parseArgs({
    args: normaliseArgs(Deno.args),
    options: { addr: { type: "string" }, "sysfs-cpu-root": { type: "string" } },
  });
  const parsed = ConfigSchema.safeParse({
    addr: values.addr,
    sysfsCpuRoot: values["sysfs-cpu-root"],
  });
  if (!parsed.success) {
    log.error("bad flags", {
      issues: parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "),
    });
    Deno.exit(2);
  }
  const cfg = Object.freeze(parsed.data);
  const i = cfg.addr.lastIndexOf(":");
  const hostname = cfg.addr.slice(0, i) || "0.0.0.0";
  const port = Number(cfg.addr.slice(i + 1));
  const handler = createDaemonHandler({ sysfsCpuRoot: cfg.sysfsCpuRoot, logger: log });
  const server = Deno.serve({
    hostname,
    port,
    onListen: () => log.info("listening", { addr: cfg.addr }),
  }, handler);
  Deno.addSignalListener("SIGTERM", () => void server.shutdown());
  await server.finished;
}
