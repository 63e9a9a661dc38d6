/**
 * The controller's Prometheus metrics (reference §5.1 names) in their own prom-client registry,
 * and the HTTP handlers for `/metrics`, `/healthz` and `/readyz`. Handlers are
 * `(Request) => Response` so tests call them without a socket. No global registry.
 * @module
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";

/** The controller's metrics. */
export interface ControllerMetrics {
  /** The registry holding them. */
  readonly registry: Registry;
  /** `reconcile_duration_seconds{outcome}`. */
  readonly reconcileDuration: Histogram<"outcome">;
  /** `reconcile_failing_objects`. */
  readonly failingObjects: Gauge;
  /** `vm_restarts_count`. */
  readonly vmRestarts: Counter;
  /** `vm_creation_to_runner_creation_duration_seconds`. */
  readonly creationToRunner: Histogram;
  /** `vm_runner_creation_to_vm_running_duration_seconds`. */
  readonly runnerToRunning: Histogram;
  /** `vm_creation_to_vm_running_duration_seconds`. */
  readonly creationToRunning: Histogram;
  /** `neonvm_controller_actions_total{action,outcome}` (ours). */
  readonly actions: Counter<"action" | "outcome">;
}

const DURATION_BUCKETS = [0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300];

/** Creates the metrics in a fresh registry. */
export function createControllerMetrics(): ControllerMetrics {
  const registry = new Registry();
  const registers = [registry];
  return {
    registry,
    reconcileDuration: new Histogram({
      name: "reconcile_duration_seconds",
      help: "Duration of VirtualMachine reconciles",
      labelNames: ["outcome"],
      buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10],
      registers,
    }),
    failingObjects: new Gauge({
      name: "reconcile_failing_objects",
      help: "Number of objects whose last reconcile failed",
      registers,
    }),
    vmRestarts: new Counter({
      name: "vm_restarts_count",
      help: "Runner pod restarts of VirtualMachines",
      registers,
    }),
    creationToRunner: new Histogram({
      name: "vm_creation_to_runner_creation_duration_seconds",
      help: "Time from VM creation to runner pod creation",
      buckets: DURATION_BUCKETS,
      registers,
    }),
    runnerToRunning: new Histogram({
      name: "vm_runner_creation_to_vm_running_duration_seconds",
      help: "Time from runner pod creation to VM Running",
      buckets: DURATION_BUCKETS,
      registers,
    }),
    creationToRunning: new Histogram({
      name: "vm_creation_to_vm_running_duration_seconds",
      help: "Time from VM creation to VM Running",
      buckets: DURATION_BUCKETS,
      registers,
    }),
    actions: new Counter({
      name: "neonvm_controller_actions_total",
      help: "Reconcile actions executed, by type and outcome",
      labelNames: ["action", "outcome"],
      registers,
    }),
  };
}

/** Serves `/metrics` from the registry. */
export async function metricsHandler(metrics: ControllerMetrics, req: Request): Promise<Response> {
  const path = new URL(req.url).pathname;
  if (path !== "/metrics") return new Response("not found\n", { status: 404 });
  return new Response(await metrics.registry.metrics(), {
    headers: { "content-type": metrics.registry.contentType },
  });
}

/** Serves `/healthz` (always ok while the process runs) and `/readyz` (`ready()`). */
export function probeHandler(ready: () => boolean, req: Request): Response {
  const path = new URL(req.url).pathname;
  if (path === "/healthz") return new Response("ok\n");
  if (path === "/readyz") {
    return ready() ? new Response("ok\n") : new Response("not ready\n", { status: 503 });
  }
  return new Response("not found\n", { status: 404 });
}
