/**
 * The agent's Prometheus metrics with the reference's names (§1.6): a global registry (served on
 * :9100) and a per-VM registry (served on :9101). Holds prom-client objects only; it does not
 * serve HTTP and does not decide anything.
 * @module
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Resources } from "../../api/quantity.ts";

/** Change direction label: `inc` or `dec`. */
export type Direction = "inc" | "dec";

/** Global agent metrics. */
export class AgentMetrics {
  /** Registry served on :9100. */
  readonly registry: Registry = new Registry();
  /** Registry served on :9101. */
  readonly vmRegistry: Registry = new Registry();

  /** Permit requests by HTTP code (or `[error]`). */
  readonly pluginRequests: Counter<"code">;
  readonly #pluginRequestedCpu: Counter<"direction">;
  readonly #pluginRequestedMem: Counter<"direction">;
  readonly #pluginAcceptedCpu: Counter<"direction">;
  readonly #pluginAcceptedMem: Counter<"direction">;
  /** Permits that granted none of an increase. */
  readonly fullDenials: Counter<"direction">;
  /** Permits that granted part of an increase. */
  readonly partialApprovals: Counter<"direction">;
  /** Requests to the monitor by endpoint and outcome. */
  readonly monitorOutbound: Counter<"endpoint" | "code">;
  /** Requests from the monitor by endpoint and outcome. */
  readonly monitorInbound: Counter<"endpoint" | "code">;
  readonly #monitorRequestedCpu: Counter<"direction">;
  readonly #monitorRequestedMem: Counter<"direction">;
  readonly #monitorApprovedCpu: Counter<"direction">;
  readonly #monitorApprovedMem: Counter<"direction">;
  /** NeonVM patches by result (`ok` or `[error: <cause>]`). */
  readonly neonvmOutbound: Counter<"result">;
  readonly #neonvmRequestedCpu: Counter<"direction">;
  readonly #neonvmRequestedMem: Counter<"direction">;
  /** Runners by state. */
  readonly runnersCurrent: Gauge<"is_endpoint" | "state">;
  /** Runner crashes. */
  readonly runnerPanics: Counter;
  /** Runner starts. */
  readonly runnerStarts: Counter;
  /** Runner restarts after a crash. */
  readonly runnerRestarts: Counter;
  /** Decisions computed. */
  readonly nextActions: Counter;
  /** Latencies by kind. */
  readonly latency: Record<"scaling" | "plugin" | "monitor" | "neonvm", Histogram<"direction">>;
  /** Per-VM CPU figures. */
  readonly vmCpu: Gauge<string>;
  /** Per-VM memory figures. */
  readonly vmMem: Gauge<string>;
  /** Per-VM restart count. */
  readonly vmRestarts: Gauge<string>;
  /** Per-VM desired CU by component. */
  readonly vmDesiredCu: Gauge<string>;
  /** Per-VM extra IP presence. */
  readonly vmExtraIp: Gauge<string>;

  /** Creates and registers every metric. */
  constructor() {
    const r = [this.registry];
    const counter = <L extends string>(name: string, help: string, labelNames: L[]) =>
      new Counter<L>({ name, help, labelNames, registers: r });
    const p = "autoscaling_agent_scheduler_plugin_";
    this.pluginRequests = counter(`${p}requests_total`, "Permit requests", ["code"]);
    this.#pluginRequestedCpu = counter(`${p}requested_cpu_change_total`, "vCPU asked", [
      "direction",
    ]);
    this.#pluginRequestedMem = counter(`${p}requested_mem_change_total`, "MiB asked", [
      "direction",
    ]);
    this.#pluginAcceptedCpu = counter(`${p}accepted_cpu_change_total`, "vCPU granted", [
      "direction",
    ]);
    this.#pluginAcceptedMem = counter(`${p}accepted_mem_change_total`, "MiB granted", [
      "direction",
    ]);
    this.fullDenials = counter("autoscaling_agent_scaling_full_denials_total", "Full denials", [
      "direction",
    ]);
    this.partialApprovals = counter(
      "autoscaling_agent_scaling_partial_approvals_total",
      "Partial approvals",
      ["direction"],
    );
    const m = "autoscaling_agent_monitor_";
    this.monitorOutbound = counter(`${m}outbound_requests_total`, "To monitor", [
      "endpoint",
      "code",
    ]);
    this.monitorInbound = counter(`${m}inbound_requests_total`, "From monitor", [
      "endpoint",
      "code",
    ]);
    this.#monitorRequestedCpu = counter(`${m}requested_cpu_change_total`, "vCPU", ["direction"]);
    this.#monitorRequestedMem = counter(`${m}requested_mem_change_total`, "MiB", ["direction"]);
    this.#monitorApprovedCpu = counter(`${m}approved_cpu_change_total`, "vCPU", ["direction"]);
    this.#monitorApprovedMem = counter(`${m}approved_mem_change_total`, "MiB", ["direction"]);
    const n = "autoscaling_agent_neonvm_";
    this.neonvmOutbound = counter(`${n}outbound_requests_total`, "NeonVM patches", ["result"]);
    this.#neonvmRequestedCpu = counter(`${n}requested_cpu_change_total`, "vCPU", ["direction"]);
    // Name as in the reference, including "changed".
    this.#neonvmRequestedMem = counter(`${n}requested_mem_changed_total`, "MiB", ["direction"]);
    this.runnersCurrent = new Gauge({
      name: "autoscaling_agent_runners_current",
      help: "Runners by state",
      labelNames: ["is_endpoint", "state"],
      registers: r,
    });
    this.runnerPanics = counter("autoscaling_agent_runner_thread_panics_total", "Crashes", []);
    this.runnerStarts = counter("autoscaling_agent_runner_starts", "Starts", []);
    this.runnerRestarts = counter("autoscaling_agent_runner_restarts", "Restarts", []);
    this.nextActions = counter("autoscaling_agent_runner_next_actions_total", "Decisions", []);
    const hist = (kind: string) =>
      new Histogram<"direction">({
        name: `autoscaling_agent_${kind}_latency_seconds`,
        help: `${kind} latency`,
        labelNames: ["direction"],
        buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
        registers: r,
      });
    this.latency = {
      scaling: hist("scaling"),
      plugin: hist("plugin"),
      monitor: hist("monitor"),
      neonvm: hist("neonvm"),
    };
    const vmLabels = ["vm_namespace", "vm_name", "endpoint_id", "project_id"];
    const vr = [this.vmRegistry];
    this.vmCpu = new Gauge({
      name: "autoscaling_vm_cpu_cores",
      help: "VM CPU",
      labelNames: [...vmLabels, "value"],
      registers: vr,
    });
    this.vmMem = new Gauge({
      name: "autoscaling_vm_memory_bytes",
      help: "VM memory",
      labelNames: [...vmLabels, "value"],
      registers: vr,
    });
    this.vmRestarts = new Gauge({
      name: "autoscaling_vm_restart_count",
      help: "VM restarts",
      labelNames: vmLabels,
      registers: vr,
    });
    this.vmDesiredCu = new Gauge({
      name: "autoscaling_vm_desired_cu",
      help: "Desired CU × cuMultiplier",
      labelNames: [...vmLabels, "component"],
      registers: vr,
    });
    this.vmExtraIp = new Gauge({
      name: "autoscaling_vm_extra_ip",
      help: "1 if the VM has an extra network IP",
      labelNames: vmLabels,
      registers: vr,
    });
  }

  /** Records the per-field change of a permit request and what was granted. */
  pluginChange(current: Resources, requested: Resources, permit: Resources | undefined): void {
    changes(this.#pluginRequestedCpu, this.#pluginRequestedMem, current, requested);
    if (permit === undefined) return;
    changes(this.#pluginAcceptedCpu, this.#pluginAcceptedMem, current, permit);
    const asked = requested.vCPUs > current.vCPUs || requested.mem > current.mem;
    if (!asked) return;
    const got = permit.vCPUs > current.vCPUs || permit.mem > current.mem;
    const all = permit.vCPUs >= requested.vCPUs && permit.mem >= requested.mem;
    if (!got) this.fullDenials.inc({ direction: "inc" });
    else if (!all) this.partialApprovals.inc({ direction: "inc" });
  }

  /** Records a monitor request's change, and its approval when `approved`. */
  monitorChange(current: Resources, target: Resources, approved: boolean): void {
    changes(this.#monitorRequestedCpu, this.#monitorRequestedMem, current, target);
    if (approved) changes(this.#monitorApprovedCpu, this.#monitorApprovedMem, current, target);
  }

  /** Records a NeonVM patch's change. */
  neonvmChange(current: Resources, target: Resources): void {
    changes(this.#neonvmRequestedCpu, this.#neonvmRequestedMem, current, target);
  }
}

function changes(
  cpu: Counter<"direction">,
  mem: Counter<"direction">,
  from: Resources,
  to: Resources,
): void {
  const dc = (to.vCPUs - from.vCPUs) / 1000;
  const dm = (to.mem - from.mem) / (1024 * 1024);
  if (dc > 0) cpu.inc({ direction: "inc" }, dc);
  if (dc < 0) cpu.inc({ direction: "dec" }, -dc);
  if (dm > 0) mem.inc({ direction: "inc" }, dm);
  if (dm < 0) mem.inc({ direction: "dec" }, -dm);
}

/** Direction label from revision flags (bit0 upscale, bit1 downscale). */
export function directionOfFlags(flags: number): "inc" | "dec" | "both" | "none" {
  const up = (flags & 1) !== 0;
  const down = (flags & 2) !== 0;
  return up && down ? "both" : up ? "inc" : down ? "dec" : "none";
}
