/**
 * autoscale-scheduler entry point: flags → config file (zod, reference §4.1) → logger, clock,
 * API client → `SchedulerApp` → listeners on :10299 (permit API + kube-scheduler extender under
 * `/scheduler/`) and :9100 (metrics, /healthz, /readyz). Exits non-zero on bad config, on a
 * startup sync timeout, or when leadership is lost. The only place that reads flags, environment
 * and files.
 * @module
 */
import { parseArgs } from "node:util";
import { parseSchedulerConfig, type SchedulerConfig } from "../api/scheduler_config.ts";
import { systemClock } from "../lib/clock.ts";
import { ConfigError, errorChainMessage } from "../lib/errors.ts";
import { KubeClient } from "../lib/k8s/client.ts";
import { loadClusterAccess } from "../lib/k8s/kubeconfig.ts";
import { createLogger, type LogLevel } from "../lib/log.ts";
import { SchedulerApp } from "./io/app.ts";

const USAGE = `Usage: scheduler [options]
  --config <file>               config JSON (reference §4.1); defaults when omitted
  --kubeconfig <file>           kubeconfig; else KUBECONFIG, ~/.kube/config or in-cluster
  --listen-addr <host:port>     permit API + extender (default 0.0.0.0:10299)
  --metrics-addr <host:port>    metrics and health (default 0.0.0.0:9100)
  --leader-elect                use a Lease so only one replica decides (default off)
  --leader-elect-namespace <ns> (default $POD_NAMESPACE or kube-system)
  --leader-elect-name <name>    (default autoscale-scheduler-extender)
  --disable-migrations          never create VirtualMachineMigrations
  --migration-namespaces <a,b>  only migrate VMs in these namespaces (default: all)
  --log-level <debug|info|warn|error>`;

function splitAddr(addr: string, what: string): { hostname: string; port: number } {
  const i = addr.lastIndexOf(":");
  const port = Number(addr.slice(i + 1));
  if (i < 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError(`${what}: "${addr}" is not host:port`);
  }
  return { hostname: addr.slice(0, i) || "0.0.0.0", port };
}

async function loadConfig(path: string | undefined): Promise<SchedulerConfig> {
  let raw: unknown = {};
  if (path !== undefined) {
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (cause) {
      throw new ConfigError(`Cannot read config file "${path}"`, { cause });
    }
    try {
      raw = JSON.parse(text);
    } catch (cause) {
      throw new ConfigError(`Config file "${path}" is not JSON`, { cause });
    }
  }
  const r = parseSchedulerConfig(raw);
  if (!r.ok) throw new ConfigError(r.error.message, { cause: r.error });
  return Object.freeze(r.value);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      config: { type: "string" },
      kubeconfig: { type: "string" },
      "listen-addr": { type: "string", default: "0.0.0.0:10299" },
      "metrics-addr": { type: "string", default: "0.0.0.0:9100" },
      "leader-elect": { type: "boolean", default: false },
      "leader-elect-namespace": { type: "string" },
      "leader-elect-name": { type: "string", default: "autoscale-scheduler-extender" },
      "log-level": { type: "string", default: "info" },
      "disable-migrations": { type: "boolean", default: false },
      "migration-namespaces": { type: "string" },
      help: { type: "boolean", default: false },
    },
    strict: true,
  });
  if (values.help) {
    Deno.stdout.writeSync(new TextEncoder().encode(USAGE + "\n"));
    return 0;
  }
  const level = values["log-level"];
  if (!["debug", "info", "warn", "error"].includes(level)) {
    throw new ConfigError(`--log-level: "${level}" is not one of debug, info, warn, error`);
  }
  const logger = createLogger("scheduler", { level: level as LogLevel });
  const config = await loadConfig(values.config);
  const listen = splitAddr(values["listen-addr"], "--listen-addr");
  const metricsAddr = splitAddr(values["metrics-addr"], "--metrics-addr");
  const access = await loadClusterAccess(
    values.kubeconfig !== undefined ? { kubeconfigPath: values.kubeconfig } : {},
  );
  using client = KubeClient.fromAccess(access, {
    fieldManager: "autoscale-scheduler",
    requestTimeoutMs: 30_000,
    userAgent: "autoscale-scheduler",
  });
  const identity = `${Deno.hostname()}_${crypto.randomUUID().slice(0, 8)}`;
  const app = new SchedulerApp({
    config,
    client,
    logger,
    clock: systemClock,
    random: Math.random,
    disableMigrations: values["disable-migrations"],
    migrationNamespaces: values["migration-namespaces"] === undefined
      ? undefined
      : new Set(values["migration-namespaces"].split(",").map((x) => x.trim()).filter((x) => x)),
    leaderElection: values["leader-elect"]
      ? {
        namespace: values["leader-elect-namespace"] ?? Deno.env.get("POD_NAMESPACE") ??
          "kube-system",
        name: values["leader-elect-name"],
        identity,
      }
      : undefined,
  });
  const stop = new AbortController();
  const onSignal = () => stop.abort(new DOMException("signal", "AbortError"));
  Deno.addSignalListener("SIGTERM", onSignal);
  Deno.addSignalListener("SIGINT", onSignal);
  const serverOpts = { onListen: () => {}, signal: stop.signal };
  const mainServer = Deno.serve({ ...serverOpts, ...listen }, app.mainHandler);
  const opsServer = Deno.serve({ ...serverOpts, ...metricsAddr }, app.opsHandler);
  logger.info("Listening", {
    listen: values["listen-addr"],
    metrics: values["metrics-addr"],
    config,
  });
  let code = 0;
  try {
    await app.run(stop.signal);
  } catch (error) {
    if (!stop.signal.aborted) {
      logger.error("Scheduler stopped", { error });
      code = 1;
    }
  } finally {
    stop.abort();
    // Reference: 5 s graceful shutdown of the HTTP server.
    await Promise.race([
      Promise.all([mainServer.finished, opsServer.finished]),
      systemClock.sleep(5000),
    ]);
  }
  return code;
}

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (error) {
    // Bad flags or config: one line with the offending paths, non-zero exit.
    createLogger("scheduler").error("Cannot start", { error: errorChainMessage(error) });
    Deno.exit(2);
  }
}
