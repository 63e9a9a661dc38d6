/** Checks that the registries expose the reference's metric names (§1.6). */
import assert from "node:assert/strict";
import { GiB } from "../../api/quantity.ts";
import { AgentMetrics, directionOfFlags } from "./prom_metrics.ts";

Deno.test("global and per-VM registries carry the reference's names", async () => {
  const m = new AgentMetrics();
  m.pluginChange({ vCPUs: 250, mem: GiB }, { vCPUs: 1000, mem: 4 * GiB }, { vCPUs: 500, mem: GiB });
  m.monitorChange({ vCPUs: 500, mem: 2 * GiB }, { vCPUs: 250, mem: GiB }, false);
  m.neonvmChange({ vCPUs: 250, mem: GiB }, { vCPUs: 500, mem: 2 * GiB });
  const text = await m.registry.metrics();
  for (
    const name of [
      "autoscaling_agent_scheduler_plugin_requests_total",
      "autoscaling_agent_scheduler_plugin_requested_cpu_change_total",
      "autoscaling_agent_scheduler_plugin_requested_mem_change_total",
      "autoscaling_agent_scheduler_plugin_accepted_cpu_change_total",
      "autoscaling_agent_scheduler_plugin_accepted_mem_change_total",
      "autoscaling_agent_scaling_full_denials_total",
      "autoscaling_agent_scaling_partial_approvals_total",
      "autoscaling_agent_monitor_outbound_requests_total",
      "autoscaling_agent_monitor_inbound_requests_total",
      "autoscaling_agent_monitor_requested_cpu_change_total",
      "autoscaling_agent_monitor_requested_mem_change_total",
      "autoscaling_agent_monitor_approved_cpu_change_total",
      "autoscaling_agent_monitor_approved_mem_change_total",
      "autoscaling_agent_neonvm_outbound_requests_total",
      "autoscaling_agent_neonvm_requested_cpu_change_total",
      "autoscaling_agent_neonvm_requested_mem_changed_total",
      "autoscaling_agent_runners_current",
      "autoscaling_agent_runner_thread_panics_total",
      "autoscaling_agent_runner_starts",
      "autoscaling_agent_runner_restarts",
      "autoscaling_agent_runner_next_actions_total",
      "autoscaling_agent_scaling_latency_seconds",
      "autoscaling_agent_plugin_latency_seconds",
      "autoscaling_agent_monitor_latency_seconds",
      "autoscaling_agent_neonvm_latency_seconds",
    ]
  ) assert.match(text, new RegExp(`^# TYPE ${name} `, "m"), name);
  // Partial approval: CPU 250m → asked 1, got 500m.
  assert.match(text, /autoscaling_agent_scaling_partial_approvals_total\{direction="inc"\} 1/);
  assert.match(
    text,
    /autoscaling_agent_scheduler_plugin_requested_mem_change_total\{direction="inc"\} 3072/,
  );
  assert.match(
    text,
    /autoscaling_agent_monitor_requested_cpu_change_total\{direction="dec"\} 0.25/,
  );
  const vmText = await m.vmRegistry.metrics();
  for (
    const name of [
      "autoscaling_vm_cpu_cores",
      "autoscaling_vm_memory_bytes",
      "autoscaling_vm_restart_count",
      "autoscaling_vm_desired_cu",
      "autoscaling_vm_extra_ip",
    ]
  ) assert.match(vmText, new RegExp(`^# TYPE ${name} gauge`, "m"), name);
  assert.deepEqual([0, 1, 2, 3].map(directionOfFlags), ["none", "inc", "dec", "both"]);
});
