/**
 * neonvm-controller composition root: flags -> config -> logger, clock, Kubernetes client ->
 * metrics and probe servers -> (leader election ->) the VirtualMachine controller. Only this file
 * reads flags, environment and kubeconfig. Exits non-zero on bad config or lost leadership.
 * @module
 */
import { VirtualMachineSchema } from "../api/virtualmachine.ts";
import { VirtualMachineMigrationSchema } from "../api/virtualmachine_migration.ts";
import { systemClock } from "../lib/clock.ts";
import { ConfigError, errorChainMessage } from "../lib/errors.ts";
import { KubeClient } from "../lib/k8s/client.ts";
import { EventSchema, LeaseSchema, PodSchema } from "../lib/k8s/core_types.ts";
import { EventRecorder } from "../lib/k8s/events.ts";
import { loadClusterAccess } from "../lib/k8s/kubeconfig.ts";
import { runLeaderElection } from "../lib/k8s/leader_election.ts";
import {
  EVENTS,
  LEASES,
  PODS,
  VIRTUAL_MACHINE_MIGRATIONS,
  VIRTUAL_MACHINES,
} from "../lib/k8s/meta.ts";
import { createLogger, writeStderr } from "../lib/log.ts";
import { type ControllerConfig, parseControllerArgs, USAGE } from "./config.ts";
import { VmController } from "./io/controller.ts";
import { RealGuestIo } from "./io/guest.ts";
import { RealMigrationQmp } from "./io/migration_qmp.ts";
import { createControllerMetrics, metricsHandler, probeHandler } from "./io/metrics.ts";

async function run(config: ControllerConfig, signal: AbortSignal): Promise<void> {
  const logger = createLogger("controller", { level: config.logLevel });
  const access = await loadClusterAccess(
    config.kubeconfig !== undefined ? { kubeconfigPath: config.kubeconfig } : {},
  );
  using kube = KubeClient.fromAccess(access, { fieldManager: "neonvm-controller" });
  const metrics = createControllerMetrics();
  const identity = `${Deno.hostname()}_${crypto.randomUUID()}`;
  const events = new EventRecorder({
    events: kube.resource(EVENTS, EventSchema),
    component: "neonvm-controller",
    host: Deno.env.get("POD_NAME") ?? Deno.hostname(),
    clock: systemClock,
    logger: logger.child("events"),
  });
  const controller = new VmController({
    vms: kube.resource(VIRTUAL_MACHINES, VirtualMachineSchema),
    pods: kube.resource(PODS, PodSchema),
    migrations: {
      client: kube.resource(VIRTUAL_MACHINE_MIGRATIONS, VirtualMachineMigrationSchema),
      qmp: new RealMigrationQmp(),
    },
    namespace: config.namespace,
    concurrency: config.concurrencyLimit,
    guest: new RealGuestIo(),
    events,
    clock: systemClock,
    logger,
    metrics,
    random: Math.random,
    settings: {
      defaultCpuScalingMode: config.defaultCpuScalingMode,
      atMostOnePod: config.atMostOnePod,
      runner: {
        runnerImage: config.runnerImage,
        runnerCommand: config.runnerCommand,
        runnerExtraArgs: config.runnerExtraArgs,
        disableRunnerCgroup: config.disableRunnerCgroup,
        useVirtioConsole: config.useVirtioConsole,
        qemuDiskCacheSettings: config.qemuDiskCacheSettings,
        memhpAutoMovableRatio: config.memhpAutoMovableRatio,
        overheadMilliCpu: config.runnerOverheadCpu,
        overheadMemBytes: config.runnerOverheadMemory,
        runnerPrivileged: config.runnerPrivileged,
        runnerCapabilities: config.runnerCapabilities,
        devicePluginResources: config.devicePluginResources,
      },
    },
  });
  // A standby replica (not leading) is ready; the leader is ready once its caches are synced.
  let isLeader = !config.leaderElect;
  const quiet = { onListen: () => {} };
  const metricsServer = Deno.serve({
    ...config.metricsBindAddress,
    ...quiet,
    signal,
  }, (req) => metricsHandler(metrics, req));
  const probeServer = Deno.serve({
    ...config.healthProbeBindAddress,
    ...quiet,
    signal,
  }, (req) => probeHandler(() => !isLeader || controller.synced, req));
  logger.info("starting", {
    metrics: config.metricsBindAddress,
    probes: config.healthProbeBindAddress,
    leaderElect: config.leaderElect,
    namespace: config.namespace ?? "(all)",
  });
  try {
    if (config.leaderElect) {
      await runLeaderElection(
        {
          leases: kube.resource(LEASES, LeaseSchema),
          namespace: config.leaderElectionNamespace ?? access.namespace,
          name: config.leaderElectionId,
          identity,
          leaseDurationMs: config.leaseDurationMs,
          renewDeadlineMs: config.renewDeadlineMs,
          retryPeriodMs: config.retryPeriodMs,
          clock: systemClock,
          logger: logger.child("leader"),
        },
        signal,
        (leading) => {
          isLeader = true;
          return controller.run(leading);
        },
      );
    } else {
      await controller.run(signal);
    }
  } finally {
    await Promise.allSettled([metricsServer.finished, probeServer.finished]);
  }
}

if (import.meta.main) {
  if (Deno.args.includes("--help") || Deno.args.includes("-h")) {
    writeStderr(USAGE);
    Deno.exit(0);
  }
  let config: ControllerConfig;
  try {
    config = parseControllerArgs(Deno.args, Deno.env.toObject());
  } catch (error) {
    writeStderr(error instanceof ConfigError ? error.message : errorChainMessage(error));
    Deno.exit(2);
  }
  const ac = new AbortController();
  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(sig, () => ac.abort(new DOMException(sig, "AbortError")));
  }
  try {
    await run(config, ac.signal);
  } catch (error) {
    if (!ac.signal.aborted) {
      writeStderr(JSON.stringify({
        ts: new Date().toISOString(),
        level: "error",
        logger: "controller",
        msg: "controller failed",
        error: errorChainMessage(error),
      }));
      Deno.exit(1);
    }
  }
}
