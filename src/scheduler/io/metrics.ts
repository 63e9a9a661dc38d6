/**
 * Prometheus metrics of the scheduler with the reference's names (§1.6, prefix
 * `autoscaling_plugin_`), in a registry of their own. Node gauges are computed from the state at
 * scrape time. Only counts and reads; never changes the state.
 * @module
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { ClusterState } from "../core/state.ts";

/** The scheduler's metrics. */
export interface SchedulerMetrics {
  /** The registry to expose. */
  readonly registry: Registry;
  /** `autoscaling_plugin_resource_requests_total{code}`. */
  readonly requests: Counter<"code">;
  /** `autoscaling_plugin_resource_requests_results_total{code,node}`. */
  readonly requestResults: Counter<"code" | "node">;
  /** `autoscaling_plugin_k8s_ops_total{op,kind,outcome}`. */
  readonly k8sOps: Counter<"op" | "kind" | "outcome">;
  /** `autoscaling_plugin_extension_calls_total{method,...}`. */
  readonly extensionCalls: Counter<"method" | "desired_availability_zone" | "ignored_namespace">;
  /** `autoscaling_plugin_extension_call_fails_total{method,...,status}`. */
  readonly extensionCallFails: Counter<
    "method" | "desired_availability_zone" | "ignored_namespace" | "status"
  >;
  /** `autoscaling_plugin_reserve_should_deny_total` (bind refused for lack of room). */
  readonly reserveShouldDeny: Counter;
  /** `autoscaling_plugin_permit_latency_seconds{kind}` (ours: answer latency). */
  readonly permitLatency: Histogram<"kind">;
  /** `autoscaling_plugin_migrations_created_total` (ours). */
  readonly migrationsCreated: Counter;
  /**
   * Counts one permit answer in `requests` and `requestResults` at the cost of a map lookup; the
   * counts reach the prom-client counters when they are next read (the permit path runs thousands
   * of times per second, scrapes every few seconds).
   */
  readonly countPermitAnswer: (code: number, node: string) => void;
}

const FIELDS = ["Total", "Reserved", "Committed", "Migrating", "Watermark"] as const;

/** Creates the metrics; node gauges read `state` on every scrape. */
export function createMetrics(
  state: ClusterState,
  nodeMetricLabels: Readonly<Record<string, string>>,
): SchedulerMetrics {
  const registry = new Registry();
  const extra = Object.keys(nodeMetricLabels);
  const nodeLabels = ["node", ...extra, "field"];
  const collectNodes = (gauge: Gauge<string>, pick: "cpu" | "mem") => {
    gauge.reset();
    for (const [name, n] of state.nodes) {
      if (n.info === undefined) continue;
      const labels: Record<string, string> = { node: name };
      for (const [metricLabel, nodeLabel] of Object.entries(nodeMetricLabels)) {
        labels[metricLabel] = n.info.labels[nodeLabel] ?? "";
      }
      const values: Record<(typeof FIELDS)[number], number> = {
        Total: n.info.total[pick],
        Reserved: n.sums.reserved[pick],
        Committed: n.sums.committed[pick],
        Migrating: n.sums.migrating[pick],
        Watermark: n.info.watermark[pick],
      };
      // CPU is exported in cores as the reference does (MilliCPU / 1000).
      for (const f of FIELDS) {
        gauge.set({ ...labels, field: f }, pick === "cpu" ? values[f] / 1000 : values[f]);
      }
    }
  };
  new Gauge({
    name: "autoscaling_plugin_node_cpu_resources_current",
    help: "Per-node CPU accounting (cores)",
    labelNames: nodeLabels,
    registers: [registry],
    collect() {
      collectNodes(this, "cpu");
    },
  });
  new Gauge({
    name: "autoscaling_plugin_node_mem_resources_current",
    help: "Per-node memory accounting (bytes)",
    labelNames: nodeLabels,
    registers: [registry],
    collect() {
      collectNodes(this, "mem");
    },
  });
  // Permit answers not yet moved into the two counters below, by code, then node (no key string
  // is built per answer).
  const pending = new Map<number, Map<string, { n: number }>>();
  const flushPermitCounts = () => {
    for (const [code, byNode] of pending) {
      for (const [node, p] of byNode) {
        if (p.n === 0) continue;
        requests.inc({ code: String(code) }, p.n);
        requestResults.inc({ code: String(code), node }, p.n);
        p.n = 0;
      }
    }
  };
  const requests: Counter<"code"> = new Counter({
    name: "autoscaling_plugin_resource_requests_total",
    help: "Agent permit requests by HTTP status",
    labelNames: ["code"],
    registers: [registry],
    collect: flushPermitCounts,
  });
  const requestResults: Counter<"code" | "node"> = new Counter({
    name: "autoscaling_plugin_resource_requests_results_total",
    help: "Agent permit requests by status and node",
    labelNames: ["code", "node"],
    registers: [registry],
    collect: flushPermitCounts,
  });
  return {
    registry,
    requests,
    requestResults,
    countPermitAnswer: (code, node) => {
      let byNode = pending.get(code);
      if (byNode === undefined) {
        byNode = new Map();
        pending.set(code, byNode);
      }
      const p = byNode.get(node);
      if (p !== undefined) p.n++;
      else byNode.set(node, { n: 1 });
    },
    k8sOps: new Counter({
      name: "autoscaling_plugin_k8s_ops_total",
      help: "Kubernetes API calls by operation, kind and outcome",
      labelNames: ["op", "kind", "outcome"],
      registers: [registry],
    }),
    extensionCalls: new Counter({
      name: "autoscaling_plugin_extension_calls_total",
      help: "Scheduler extender calls",
      labelNames: ["method", "desired_availability_zone", "ignored_namespace"],
      registers: [registry],
    }),
    extensionCallFails: new Counter({
      name: "autoscaling_plugin_extension_call_fails_total",
      help: "Scheduler extender calls that failed",
      labelNames: ["method", "desired_availability_zone", "ignored_namespace", "status"],
      registers: [registry],
    }),
    reserveShouldDeny: new Counter({
      name: "autoscaling_plugin_reserve_should_deny_total",
      help: "Binds refused because the pod no longer fit",
      registers: [registry],
    }),
    permitLatency: new Histogram({
      name: "autoscaling_plugin_permit_latency_seconds",
      help: "Time to answer an agent permit request",
      labelNames: ["kind"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers: [registry],
    }),
    migrationsCreated: new Counter({
      name: "autoscaling_plugin_migrations_created_total",
      help: "VirtualMachineMigrations created by the scheduler",
      registers: [registry],
    }),
  };
}
