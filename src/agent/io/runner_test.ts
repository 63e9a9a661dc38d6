/**
 * Runner tests with hand-written fakes on a FakeClock: scrapes and permit requests go through an
 * in-process fetch fake, patches to an in-memory recorder; the monitor address is a closed
 * loopback port (no monitor). Checks that garbage from the VM never stops the runner, that
 * metrics drive a permit and a patch, and that a scheduler restart mid-request is recovered.
 */
import assert from "node:assert/strict";
import { defaultAgentConfig } from "../../api/agent_config.ts";
import { GiB } from "../../api/quantity.ts";
import { FakeClock } from "../../lib/clock.ts";
import { memoryLogger } from "../../lib/log.ts";
import { coreConfigFrom } from "../core/state.ts";
import type { PatchOp } from "./neonvm.ts";
import { AgentMetrics } from "./prom_metrics.ts";
import { Runner, type RunnerVm } from "./runner.ts";
import { SchedulerTracker } from "./scheduler.ts";

function closedPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const p = (l.addr as Deno.NetAddr).port;
  l.close();
  return p;
}

/** Lets pending promise continuations and loopback I/O callbacks run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 30; i++) await new Promise((r) => setTimeout(r, 0));
}

const metricsText = (load: number) =>
  [
    "# TYPE host_load1 gauge",
    `host_load1 ${load}`,
    "# TYPE host_load5 gauge",
    `host_load5 ${load}`,
    `host_memory_total_bytes ${4 * GiB}`,
    `host_memory_available_bytes ${4 * GiB - 100 * 1024 * 1024}`,
    "host_memory_cached_bytes 0",
  ].join("\n");

const VM: RunnerVm = {
  info: {
    namespace: "ns",
    name: "vm1",
    cpu: { min: 250, max: 1000, use: 250 },
    mem: { min: GiB, max: 4 * GiB, use: GiB },
    slotSizeBytes: GiB,
    config: undefined,
    currentRevision: undefined,
  },
  podName: "vm1-pod",
  podIP: "127.0.0.1",
  endpointId: "ep-1",
  projectId: undefined,
};

function setup() {
  const base = defaultAgentConfig();
  const config = { ...base, monitor: { ...base.monitor, serverPort: closedPort() } };
  const clock = new FakeClock(1_700_000_000_000);
  const logger = memoryLogger();
  const scheduler = new SchedulerTracker();
  scheduler.set({ name: "sched-a", uid: "a", ip: "10.0.0.1" });
  const permits: { url: string; body: Record<string, unknown> }[] = [];
  const patches: PatchOp[][] = [];
  const state = {
    metrics: "garbage{{{ \u0000 not prometheus",
    hangScheduler: undefined as string | undefined,
  };
  const fetchFn = async (req: Request): Promise<Response> => {
    const url = new URL(req.url);
    if (url.pathname === "/metrics") return new Response(state.metrics);
    if (url.hostname === state.hangScheduler) {
      return await new Promise<Response>((_, reject) =>
        req.signal.addEventListener("abort", () => reject(req.signal.reason))
      );
    }
    const body = await req.json();
    permits.push({ url: req.url, body });
    return Response.json({ permit: body.resources });
  };
  const metrics = new AgentMetrics();
  const runner = new Runner({
    config,
    core: coreConfigFrom(config),
    clock,
    logger,
    metrics,
    events: { report: () => {} },
    scheduler,
    fetch: fetchFn,
    patchVm: (_ns, _name, ops) => {
      patches.push(ops);
      return Promise.resolve();
    },
    random: () => 0,
  }, VM);
  return { runner, clock, logger, scheduler, permits, patches, state, metrics };
}

Deno.test("garbage metrics never stop the runner; good metrics drive a permit and a patch", async () => {
  const t = setup();
  const ctl = new AbortController();
  const run = t.runner.run(ctl.signal);
  await t.clock.advance(0);
  await settle();
  // First request reports current usage.
  assert.equal(t.permits.length, 1);
  assert.deepEqual(t.permits[0]!.body.resources, { vCPUs: "250m", mem: "1Gi" });
  assert.equal(t.state.metrics.startsWith("garbage"), true);
  assert.ok(t.logger.lines.some((l) => l.msg === "system metrics unusable"));
  assert.equal(t.runner.state.systemMetrics, undefined);

  // Valid metrics: load 0.9 → 4 CU (capped at max 1 vCPU / 4 GiB).
  t.state.metrics = metricsText(0.9);
  await t.clock.advance(5000);
  await settle();
  await t.clock.advance(0);
  await settle();
  assert.deepEqual(t.permits.at(-1)!.body.resources, { vCPUs: 1, mem: "4Gi" });
  assert.deepEqual(t.patches.at(-1)?.slice(0, 2), [
    { op: "replace", path: "/spec/guest/cpus/use", value: 1 },
    { op: "replace", path: "/spec/guest/memorySlots/use", value: 4 },
  ]);
  assert.deepEqual(t.runner.state.using, { vCPUs: 1000, mem: 4 * GiB });
  ctl.abort();
  await run;
});

Deno.test("scheduler restart in the middle of an upscale: the new scheduler is asked at once", async () => {
  const t = setup();
  t.state.metrics = metricsText(0.9);
  t.state.hangScheduler = "10.0.0.1";
  const ctl = new AbortController();
  const run = t.runner.run(ctl.signal);
  await t.clock.advance(0);
  await settle();
  assert.equal(t.permits.length, 0, "the old scheduler never answers");
  t.scheduler.set({ name: "sched-b", uid: "b", ip: "10.0.0.2" });
  await settle();
  await t.clock.advance(0);
  await settle();
  assert.ok(t.permits.length >= 1);
  assert.ok(t.permits.every((p) => p.url === "http://10.0.0.2:10299/"));
  await t.clock.advance(0);
  await settle();
  assert.deepEqual(t.runner.state.using, { vCPUs: 1000, mem: 4 * GiB });
  ctl.abort();
  await run;
});

Deno.test("scaling latency is observed once the VM reports the agent's revision applied", async () => {
  const t = setup();
  t.state.metrics = metricsText(0.9);
  const ctl = new AbortController();
  const run = t.runner.run(ctl.signal);
  await t.clock.advance(0);
  await settle();
  await t.clock.advance(0);
  await settle();
  const patch = t.patches.at(-1)!;
  const rev = patch.find((op) => op.path === "/spec/targetRevision")?.value as {
    revision: { value: number; flags: number };
  };
  assert.ok(rev, "the patch carries spec.targetRevision");
  const count = async () => {
    const text = await t.metrics.registry.metrics();
    const m = /autoscaling_agent_scaling_latency_seconds_count\{direction="inc"\} (\d+)/.exec(text);
    return m ? Number(m[1]) : 0;
  };
  assert.equal(await count(), 0, "nothing before the controller reports the revision");
  await t.clock.advance(1500);
  t.runner.updateVm({
    ...VM,
    info: { ...VM.info, cpu: { ...VM.info.cpu, use: 1000 }, currentRevision: rev.revision },
  });
  assert.equal(await count(), 1);
  const sum = /autoscaling_agent_scaling_latency_seconds_sum\{direction="inc"\} ([\d.]+)/.exec(
    await t.metrics.registry.metrics(),
  );
  assert.ok(Number(sum?.[1]) >= 1.5, `latency covers the wait: ${sum?.[1]}`);
  t.runner.updateVm({ ...VM, info: { ...VM.info, currentRevision: rev.revision } });
  assert.equal(await count(), 1, "a revision is observed once");
  ctl.abort();
  await run;
});
