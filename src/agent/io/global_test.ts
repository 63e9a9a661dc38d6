/** Tests of the global VM-event handling: which VMs get runners, the dump, per-VM gauges. */
import assert from "node:assert/strict";
import { defaultAgentConfig } from "../../api/agent_config.ts";
import { type VirtualMachine, VirtualMachineSchema } from "../../api/virtualmachine.ts";
import { FakeClock } from "../../lib/clock.ts";
import { memoryLogger } from "../../lib/log.ts";
import { coreConfigFrom } from "../core/state.ts";
import { AgentGlobal, dumpStateHandler } from "./global.ts";
import { AgentMetrics } from "./prom_metrics.ts";
import { SchedulerTracker } from "./scheduler.ts";

function vm(
  name: string,
  over: { node?: string; annotations?: Record<string, string>; pod?: string } = {},
) {
  return VirtualMachineSchema.parse({
    apiVersion: "vm.neon.tech/v1",
    kind: "VirtualMachine",
    metadata: {
      name,
      namespace: "ns",
      labels: { "autoscaling.neon.tech/enabled": "true", "neon/endpoint-id": `ep-${name}` },
      annotations: over.annotations ?? {},
    },
    spec: {
      schedulerName: "autoscale-scheduler",
      guest: {
        cpus: { min: "250m", max: 1, use: "250m" },
        memorySlots: { min: 1, max: 4, use: 1 },
        rootDisk: { image: "img" },
      },
    },
    status: {
      phase: "Running",
      node: over.node ?? "n1",
      podIP: "10.1.1.1",
      podName: over.pod ?? `${name}-pod`,
      cpus: "250m",
      memorySize: "1Gi",
    },
  }) as VirtualMachine;
}

function setup() {
  const config = defaultAgentConfig();
  const logger = memoryLogger();
  const metrics = new AgentMetrics();
  const g = new AgentGlobal({
    config,
    core: coreConfigFrom(config),
    clock: new FakeClock(0),
    logger,
    metrics,
    events: { report: () => {} },
    scheduler: new SchedulerTracker(),
    fetch: () => Promise.reject(new Error("no network in this test")),
    patchVm: () => Promise.resolve(),
    random: () => 0,
    nodeName: "n1",
  });
  return { g, logger, metrics };
}

Deno.test("runners follow responsibility: add, update, move off node, pod restart, delete", () => {
  const { g } = setup();
  g.handle({ type: "upsert", vm: vm("b") });
  g.handle({ type: "upsert", vm: vm("a") });
  g.handle({ type: "upsert", vm: vm("other", { node: "n2" }) });
  assert.equal(g.runnerCount, 2);
  const before = g.runner("ns/a-pod");
  g.handle({ type: "upsert", vm: vm("a") });
  assert.equal(g.runner("ns/a-pod"), before, "an update keeps the runner");
  g.handle({ type: "upsert", vm: vm("a", { pod: "a-pod2" }) });
  assert.equal(g.runner("ns/a-pod"), undefined);
  assert.ok(g.runner("ns/a-pod2"));
  g.handle({ type: "upsert", vm: vm("b", { node: "n2" }) });
  assert.equal(g.runner("ns/b-pod"), undefined);
  g.handle({ type: "delete", vm: vm("a", { pod: "a-pod2" }) });
  assert.equal(g.runnerCount, 0);
});

Deno.test("a bad bounds annotation is ignored with a warning, never a crash", () => {
  const { g, logger } = setup();
  g.handle({
    type: "upsert",
    vm: vm("a", { annotations: { "autoscaling.neon.tech/bounds": "{" } }),
  });
  assert.equal(g.runnerCount, 0);
  assert.ok(logger.lines.some((l) => l.msg === "ignoring VM event: cannot extract VM info"));
});

Deno.test("state dump lists pods sorted by name; per-VM gauges only for this node", async () => {
  const { g, metrics } = setup();
  g.handle({ type: "upsert", vm: vm("b") });
  g.handle({ type: "upsert", vm: vm("a") });
  g.handle({ type: "upsert", vm: vm("z", { node: "n2" }) });
  const res = dumpStateHandler(g)(new Request("http://x/"));
  const dump = await res.json();
  assert.equal(dump.stopped, false);
  assert.deepEqual(dump.pods.map((p: { podName: string }) => p.podName), ["ns/a-pod", "ns/b-pod"]);
  assert.equal(dump.pods[0].status.state, "ok");
  assert.deepEqual(dump.pods[0].runner.executorState.using, { vCPUs: 250, mem: 1073741824 });
  const text = await metrics.vmRegistry.metrics();
  assert.match(
    text,
    /autoscaling_vm_cpu_cores\{vm_namespace="ns",vm_name="a",endpoint_id="ep-a",project_id="",value="spec_max"\} 1/,
  );
  assert.doesNotMatch(text, /vm_name="z"/);
  g.handle({ type: "delete", vm: vm("a") });
  assert.doesNotMatch(await metrics.vmRegistry.metrics(), /vm_name="a"/);
  assert.equal(dumpStateHandler(g)(new Request("http://x/", { method: "POST" })).status, 405);
});

Deno.test("a crashed runner is marked panicked and restarted after 5–10 s", async () => {
  const config = defaultAgentConfig();
  const clock = new FakeClock(0);
  const metrics = new AgentMetrics();
  let calls = 0;
  const g = new AgentGlobal({
    config,
    core: coreConfigFrom(config),
    clock,
    logger: memoryLogger(),
    metrics,
    events: { report: () => {} },
    scheduler: new SchedulerTracker(),
    fetch: () => Promise.reject(new Error("no network in this test")),
    patchVm: () => Promise.resolve(),
    // The first call (inside the runner) throws: a bug, i.e. a "panic".
    random: () => {
      if (calls++ === 0) throw new Error("injected bug");
      return 0;
    },
    nodeName: "n1",
  });
  const ctl = new AbortController();
  const run = g.run(ctl.signal);
  g.handle({ type: "upsert", vm: vm("a") });
  for (let i = 0; i < 10; i++) await new Promise((r) => setTimeout(r, 0));
  let dump = await dumpStateHandler(g)(new Request("http://x/")).json();
  assert.equal(dump.pods[0].status.state, "panicked");
  assert.match(JSON.stringify(dump.pods[0].status.endState), /injected bug/);
  await clock.advance(5000);
  for (let i = 0; i < 10; i++) await new Promise((r) => setTimeout(r, 0));
  dump = await dumpStateHandler(g)(new Request("http://x/")).json();
  assert.equal(dump.pods[0].status.state, "ok");
  assert.match(await metrics.registry.metrics(), /autoscaling_agent_runner_restarts 1/);
  assert.match(await metrics.registry.metrics(), /autoscaling_agent_runner_thread_panics_total 1/);
  ctl.abort();
  await run;
});
