/**
 * vm-monitor entry point (runs inside the guest): flags -> config -> logger, clock, cgroup, file
 * cache -> service, websocket server and cgroup watcher in one task group. Exits non-zero on bad
 * flags or when start-up sizing fails (the guest's init restarts it). Holds no logic of its own.
 * @module
 */
import { systemClock } from "../lib/clock.ts";
import { ConfigError, errorChainMessage } from "../lib/errors.ts";
import { createLogger, writeStderr } from "../lib/log.ts";
import { TaskGroup } from "../lib/task_group.ts";
import { parseMonitorArgs, USAGE } from "./config.ts";
import { DEFAULT_TIMING } from "./core/monitor_core.ts";
import { DEFAULT_SIZING } from "./core/sizing.ts";
import { type Cgroup2, openCgroup2, readMemTotalBytes } from "./io/cgroup.ts";
import { PsqlFileCache } from "./io/file_cache.ts";
import { MonitorServer } from "./io/server.ts";
import { MonitorService } from "./io/service.ts";
import { watchCgroup } from "./io/watcher.ts";

/** Runs the monitor until SIGINT/SIGTERM; returns the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  let config;
  try {
    config = parseMonitorArgs(argv);
  } catch (e) {
    if (e instanceof ConfigError) {
      writeStderr(e.message);
      return e.message === USAGE ? 0 : 2;
    }
    throw e;
  }
  const logger = createLogger("monitor", { level: config.logLevel });
  const clock = systemClock;
  try {
    const systemMemBytes = await readMemTotalBytes(config.meminfo);
    let cgroup: Cgroup2 | undefined;
    if (config.cgroup !== undefined) {
      try {
        cgroup = await openCgroup2(config.cgroupRoot, config.cgroup);
      } catch (error) {
        if (config.cgroupExplicit) throw error;
        logger.warn("default cgroup unavailable; running without cgroup management", {
          cgroup: config.cgroup,
          error,
        });
      }
    }
    const fileCache = config.pgconnstr === undefined ? undefined : new PsqlFileCache({
      connstr: config.pgconnstr,
      psqlPath: config.psql,
      timeoutMs: config.psqlTimeoutMs,
    });
    const managed = {
      cgroup: cgroup !== undefined,
      cgroupLimits: config.cgroupLimits,
      lfc: fileCache !== undefined,
    };
    const service = new MonitorService({
      config: { sizing: DEFAULT_SIZING, managed, ...DEFAULT_TIMING },
      ...(cgroup !== undefined ? { cgroup } : {}),
      ...(fileCache !== undefined ? { fileCache } : {}),
      clock,
      logger: logger.child("service"),
    }, systemMemBytes);
    logger.info("starting", {
      systemMemBytes,
      managed,
      cgroup: cgroup?.path,
      addr: `${config.addr.host}:${config.addr.port}`,
    });
    await service.start();

    const stop = new AbortController();
    for (const sig of ["SIGINT", "SIGTERM"] as const) {
      Deno.addSignalListener(sig, () => stop.abort(new Error(`received ${sig}`)));
    }
    await using group = new TaskGroup(stop.signal);
    const server = new MonitorServer({ service, clock, logger: logger.child("server") });
    const http = Deno.serve({
      hostname: config.addr.host,
      port: config.addr.port,
      signal: group.signal,
      onListen: ({ hostname, port }) => logger.info("listening", { hostname, port }),
    }, server.handler);
    group.spawn("http", async () => {
      await http.finished;
      server.close();
    });
    if (cgroup !== undefined) {
      const cg = cgroup;
      group.spawn(
        "cgroup-watcher",
        (signal) => watchCgroup(cg, service, clock, signal, config.sampleIntervalMs),
      );
    }
    await group.wait();
    logger.info("stopped");
    return 0;
  } catch (error) {
    logger.error("monitor failed", { error, message: errorChainMessage(error) });
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
