/**
 * autoscaler-agent entry point: flags and environment (`CONFIG_PATH`, `K8S_NODE_NAME`,
 * `K8S_POD_IP`, as the reference) -> zod-validated config -> logger, clock, Kubernetes client ->
 * VM and scheduler-pod watches -> one runner per VM; Prometheus metrics on :9100 (global) and
 * :9101 (per VM), the state dump on `dumpState.port` (10300), scaling events to a file or HTTP.
 * The only file that reads flags, environment and files.
 * @module
 */
import { parseArgs } from "node:util";
import { parseAgentConfig } from "../api/agent_config.ts";
import { type VirtualMachine, VirtualMachineSchema } from "../api/virtualmachine.ts";
import { systemClock } from "../lib/clock.ts";
import { errorChainMessage, ParseError } from "../lib/errors.ts";
import { KubeClient } from "../lib/k8s/client.ts";
import { PodSchema } from "../lib/k8s/core_types.ts";
import { Informer } from "../lib/k8s/informer.ts";
import { loadClusterAccess } from "../lib/k8s/kubeconfig.ts";
import { PODS, VIRTUAL_MACHINES } from "../lib/k8s/meta.ts";
import { createLogger, type LogLevel, writeStderr } from "../lib/log.ts";
import { TaskGroup } from "../lib/task_group.ts";
import { coreConfigFrom } from "./core/state.ts";
import { BillingCollector, filePusher, httpPusher } from "./io/billing.ts";
import { AgentGlobal, dumpStateHandler, type VmEvent } from "./io/global.ts";
import { AgentMetrics } from "./io/prom_metrics.ts";
import {
  BatchingSink,
  discardSink,
  fileWriter,
  httpWriter,
  type ScalingEventSink,
} from "./io/scaling_event_sink.ts";
import { SchedulerTracker } from "./io/scheduler.ts";

const USAGE = `autoscaler-agent: per-VM vertical autoscaling decisions

Flags (environment variables as in the reference take effect when a flag is absent):
  --config <path>          agent config JSON (env CONFIG_PATH)          [required]
  --node-name <name>       this node (env K8S_NODE_NAME)                [required]
  --pod-ip <ip>            this pod's IP (env K8S_POD_IP)               [required]
  --kubeconfig <path>      kubeconfig; default KUBECONFIG, ~/.kube/config or in-cluster
  --metrics-port <n>       global Prometheus metrics port (default 9100)
  --vm-metrics-port <n>    per-VM Prometheus metrics port (default 9101)
  --listen-host <host>     address for the HTTP servers (default 0.0.0.0)
  --log-level <level>      debug | info | warn | error (default info)
  --help
`;

function fail(message: string): never {
  writeStderr(JSON.stringify({ level: "error", logger: "agent", msg: message }));
  Deno.exit(2);
}

function portFlag(v: string | undefined, def: number, name: string): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) fail(`--${name}: not a port: ${v}`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      config: { type: "string" },
      "node-name": { type: "string" },
      "pod-ip": { type: "string" },
      kubeconfig: { type: "string" },
      "metrics-port": { type: "string" },
      "vm-metrics-port": { type: "string" },
      "listen-host": { type: "string" },
      "log-level": { type: "string" },
      help: { type: "boolean" },
    },
    strict: true,
  });
  if (values.help) {
    await Deno.stdout.write(new TextEncoder().encode(USAGE));
    return;
  }
  const configPath = values.config ?? Deno.env.get("CONFIG_PATH");
  const nodeName = values["node-name"] ?? Deno.env.get("K8S_NODE_NAME");
  const podIP = values["pod-ip"] ?? Deno.env.get("K8S_POD_IP");
  if (!configPath) fail("missing --config (or CONFIG_PATH)");
  if (!nodeName) fail("missing --node-name (or K8S_NODE_NAME)");
  if (!podIP) fail("missing --pod-ip (or K8S_POD_IP)");
  const level = (values["log-level"] ?? "info") as LogLevel;
  if (!["debug", "info", "warn", "error"].includes(level)) fail(`bad --log-level ${level}`);
  const metricsPort = portFlag(values["metrics-port"], 9100, "metrics-port");
  const vmMetricsPort = portFlag(values["vm-metrics-port"], 9101, "vm-metrics-port");
  const host = values["listen-host"] ?? "0.0.0.0";

  let config;
  try {
    config = Object.freeze(parseAgentConfig(JSON.parse(await Deno.readTextFile(configPath))));
  } catch (e) {
    if (e instanceof ParseError) fail(e.message);
    fail(`Cannot read config "${configPath}": ${errorChainMessage(e)}`);
  }

  const clock = systemClock;
  const logger = createLogger("agent", { level, fields: { node: nodeName } });
  const access = await loadClusterAccess(
    values.kubeconfig !== undefined ? { kubeconfigPath: values.kubeconfig } : {},
  );
  using kube = KubeClient.fromAccess(access, { fieldManager: "autoscaler-agent" });
  const vms = kube.resource(VIRTUAL_MACHINES, VirtualMachineSchema);
  const pods = kube.resource(PODS, PodSchema);
  const metrics = new AgentMetrics();
  const scheduler = new SchedulerTracker();

  const sinkCfg = config.scalingEvents.clients;
  let events: ScalingEventSink = discardSink;
  let sink: BatchingSink | undefined;
  if (sinkCfg.file) {
    sink = new BatchingSink(
      fileWriter(sinkCfg.file.path),
      {
        pushEveryMs: sinkCfg.file.pushEverySeconds * 1000,
        maxBatchSize: sinkCfg.file.maxBatchSize,
      },
      clock,
      logger.child("scaling-events"),
    );
  } else if (sinkCfg.http) {
    sink = new BatchingSink(
      httpWriter(sinkCfg.http.url, sinkCfg.http.pushRequestTimeoutSeconds * 1000),
      {
        pushEveryMs: sinkCfg.http.pushEverySeconds * 1000,
        maxBatchSize: sinkCfg.http.maxBatchSize,
      },
      clock,
      logger.child("scaling-events"),
    );
  } else if (sinkCfg.s3 || sinkCfg.azureBlob) {
    logger.warn("s3/azureBlob scaling-event clients are not supported here; events are dropped");
  }
  if (sink) events = sink;

  const global = new AgentGlobal({
    config,
    core: coreConfigFrom(config),
    clock,
    logger,
    metrics,
    events,
    scheduler,
    fetch: (req) => fetch(req),
    patchVm: async (namespace, name, ops, signal) => {
      await vms.patch(name, { type: "json", ops }, { namespace, signal });
    },
    random: Math.random,
    nodeName,
  });

  const vmInformer = new Informer<VirtualMachine>({
    list: (signal) => vms.list({ signal }),
    watch: (resourceVersion, signal) => vms.watch({ resourceVersion, signal }),
    clock,
    logger: logger.child("vm-watch"),
    retryMs: 500 + Math.random() * 500,
  });
  const billCfg = config.billing.clients;
  let billing: BillingCollector | undefined;
  const billingPush = billCfg.http
    ? {
      push: httpPusher(billCfg.http.url, billCfg.http.pushRequestTimeoutSeconds * 1000),
      c: billCfg.http,
    }
    : billCfg.file
    ? { push: filePusher(billCfg.file.path), c: billCfg.file }
    : undefined;
  if (billingPush) {
    billing = new BillingCollector({
      config,
      nodeName,
      hostname: Deno.hostname(),
      clock,
      logger: logger.child("billing"),
      push: billingPush.push,
      pushEveryMs: billingPush.c.pushEverySeconds * 1000,
      maxBatchSize: billingPush.c.maxBatchSize,
    });
  } else if (billCfg.s3 || billCfg.azureBlob) {
    logger.warn("s3/azureBlob billing clients are not supported here; billing is off");
  }
  vmInformer.subscribe((ev) => {
    const vmEvent: VmEvent = ev.type === "delete"
      ? { type: "delete", vm: ev.object }
      : { type: "upsert", vm: ev.object };
    global.handle(vmEvent);
    billing?.handle(vmEvent);
  });
  const selector = `name=${config.scheduler.schedulerName}`;
  const schedInformer = new Informer({
    list: (signal) => pods.list({ namespace: "kube-system", labelSelector: selector, signal }),
    watch: (resourceVersion, signal) =>
      pods.watch({ namespace: "kube-system", labelSelector: selector, resourceVersion, signal }),
    clock,
    logger: logger.child("scheduler-watch"),
  });
  schedInformer.subscribe(() => {
    const before = scheduler.current;
    scheduler.update(schedInformer.list());
    if (scheduler.current !== before) {
      logger.info("scheduler changed", { scheduler: scheduler.current ?? null });
    }
  });

  const stop = new AbortController();
  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(sig, () => stop.abort(new DOMException(`got ${sig}`, "AbortError")));
  }
  const serve = (port: number, handler: (req: Request) => Response | Promise<Response>) =>
    Deno.serve({ hostname: host, port, signal: stop.signal, onListen: () => {} }, handler);
  const promHandler = (registry: AgentMetrics["registry"]) => async () =>
    new Response(await registry.metrics(), { headers: { "content-type": registry.contentType } });
  const servers = [
    serve(metricsPort, promHandler(metrics.registry)),
    serve(vmMetricsPort, promHandler(metrics.vmRegistry)),
  ];
  const dumpHandler = dumpStateHandler(global);
  servers.push(serve(config.dumpState.port, (req) => dumpHandler(req)));
  logger.info("agent started", {
    podIP,
    metricsPort,
    vmMetricsPort,
    dumpStatePort: config.dumpState.port,
  });

  const tg = new TaskGroup(stop.signal);
  tg.spawn("vm-watch", (s) => vmInformer.run(s));
  tg.spawn("scheduler-watch", (s) => schedInformer.run(s));
  tg.spawn("runners", (s) => global.run(s));
  if (sink) tg.spawn("scaling-events", (s) => sink.run(s));
  if (billing) tg.spawn("billing", (s) => billing.run(s));
  try {
    await tg.wait();
  } finally {
    stop.abort();
    await Promise.allSettled(servers.map((s) => s.finished));
    logger.info("agent stopped");
  }
}

if (import.meta.main) {
  try {
    await main();
  } catch (e) {
    writeStderr(
      JSON.stringify({
        level: "error",
        logger: "agent",
        msg: "agent failed",
        error: errorChainMessage(e),
      }),
    );
    Deno.exit(1);
  }
}
