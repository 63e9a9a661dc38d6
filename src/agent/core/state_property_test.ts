/**
 * Property tests of the agent core: over random sequences of events (metrics, permits partial or
 * whole, denials, failures, monitor answers, scheduler restarts, bounds changes, time passing),
 * every action respects the permit, the bounds and the 1-CU monitor step, with and without the
 * downscale stabilization window; with a window, no downscale goes below what the window holds
 * (checked against a model built from the goals decide reports). Pure: no I/O.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { defaultAgentConfig } from "../../api/agent_config.ts";
import { GiB, type Resources } from "../../api/quantity.ts";
import {
  type CoreConfig,
  coreConfigFrom,
  decide,
  initialState,
  monitorConnected,
  monitorDisconnected,
  monitorDownscaleResult,
  monitorRequestFailed,
  monitorRequestStarted,
  monitorUpscaleRequested,
  monitorUpscaleSucceeded,
  neonvmRequestFailed,
  neonvmRequestStarted,
  neonvmRequestSucceeded,
  pluginRequestFailed,
  pluginRequestStarted,
  pluginRequestSucceeded,
  schedulerChanged,
  type State,
  systemMetricsUpdated,
  type VmInfo,
  vmUpdated,
} from "./state.ts";

const CONFIG = coreConfigFrom(defaultAgentConfig());
const CU = CONFIG.computeUnit;
const VM: VmInfo = {
  namespace: "ns",
  name: "vm",
  cpu: { min: 250, max: 2000, use: 500 },
  mem: { min: GiB, max: 8 * GiB, use: 2 * GiB },
  slotSizeBytes: GiB,
  config: undefined,
  currentRevision: undefined,
};

type Step =
  | { k: "metrics"; cu: number }
  | { k: "time"; ms: number }
  | { k: "permit"; frac: number }
  | { k: "pluginFail" }
  | { k: "neonvmOk" }
  | { k: "neonvmFail" }
  | { k: "monOk" }
  | { k: "monDeny" }
  | { k: "monFail" }
  | { k: "connect" }
  | { k: "disconnect" }
  | { k: "upscaleReq" }
  | { k: "schedRestart" }
  | { k: "bounds"; minCu: number; maxCu: number };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ k: fc.constant("metrics" as const), cu: fc.integer({ min: 0, max: 10 }) }),
  fc.record({ k: fc.constant("time" as const), ms: fc.integer({ min: 0, max: 20_000 }) }),
  fc.record({
    k: fc.constant("permit" as const),
    frac: fc.double({ min: 0, max: 1, noNaN: true }),
  }),
  fc.constantFrom<Step>(
    { k: "pluginFail" },
    { k: "neonvmOk" },
    { k: "neonvmFail" },
    { k: "monOk" },
    { k: "monDeny" },
    { k: "monFail" },
    { k: "connect" },
    { k: "disconnect" },
    { k: "upscaleReq" },
    { k: "schedRestart" },
  ),
  fc.record({
    k: fc.constant("bounds" as const),
    minCu: fc.integer({ min: 1, max: 4 }),
    maxCu: fc.integer({ min: 4, max: 8 }),
  }),
);

const maxOf = (a: Resources, b: Resources | undefined): Resources =>
  b === undefined ? a : { vCPUs: Math.max(a.vCPUs, b.vCPUs), mem: Math.max(a.mem, b.mem) };
const le = (a: Resources, b: Resources) => a.vCPUs <= b.vCPUs && a.mem <= b.mem;

const minOf = (a: Resources, b: Resources): Resources => ({
  vCPUs: Math.min(a.vCPUs, b.vCPUs),
  mem: Math.min(a.mem, b.mem),
});

/**
 * Runs one random sequence of events through the core and checks every action. With a window,
 * a model keeps every desired result from metrics (the goal decide reports, within the bounds of
 * the time) and checks that no downscale request or patch goes below
 * min(usage, VM max, the highest result of the window), per field.
 */
function run(config: CoreConfig, steps: readonly Step[]): void {
  const windowMs = config.downscaleStabilizationMs;
  const samples: { atMs: number; desired: Resources }[] = [];
  let s: State = initialState(config, VM);
  let now = 1_000_000;
  for (const step of steps) {
    const d = decide(s, now);
    s = d.state;
    const a = d.actions;
    const vmMax = { vCPUs: s.vm.cpu.max, mem: s.vm.mem.max };
    const vmMin = { vCPUs: s.vm.cpu.min, mem: s.vm.mem.min };
    if (a.wait) assert.ok(a.wait.durationMs >= 0);
    if (windowMs > 0) {
      let fromMetrics = { vCPUs: CU.vCPUs * d.goal.goalCu, mem: CU.mem * d.goal.goalCu };
      if (!d.goal.hasAllMetrics) fromMetrics = maxOf(fromMetrics, s.using);
      samples.push({ atMs: now, desired: maxOf(minOf(fromMetrics, vmMax), vmMin) });
      let held = samples.at(-1)!.desired;
      for (const e of samples) if (now - e.atMs < windowMs) held = maxOf(held, e.desired);
      const floor = minOf(minOf(held, s.using), vmMax);
      assert.ok(le(floor, d.desired), "desired below what the window holds");
      if (a.neonvmRequest) assert.ok(le(floor, a.neonvmRequest.target), "patch below the window");
      if (a.monitorDownscale) {
        assert.ok(le(floor, a.monitorDownscale.target), "monitor asked below the window");
      }
      assert.ok(s.desiredHistory.length <= 16, `history of ${s.desiredHistory.length} samples`);
      assert.ok(s.desiredHistory.every((e) => now - e.atMs < windowMs), "history not pruned");
    } else assert.equal(s.desiredHistory.length, 0);
    if (a.neonvmRequest) {
      const t = a.neonvmRequest.target;
      const upper = {
        vCPUs: Math.max(s.using.vCPUs, s.plugin.permit?.vCPUs ?? 0),
        mem: Math.max(s.using.mem, s.plugin.permit?.mem ?? 0),
      };
      assert.ok(le(t, upper), "patch above max(using, permit)");
      assert.ok(
        t.vCPUs <= Math.max(s.using.vCPUs, vmMax.vCPUs) &&
          t.mem <= Math.max(s.using.mem, vmMax.mem),
      );
      assert.ok(
        t.vCPUs >= Math.min(s.using.vCPUs, vmMin.vCPUs) &&
          t.mem >= Math.min(s.using.mem, vmMin.mem),
      );
      assert.equal(t.mem % GiB, 0, "whole slots");
      if (s.monitor.approved) {
        assert.ok(
          t.mem >= Math.min(s.using.mem, s.monitor.approved.mem),
          "below monitor approval",
        );
      } else assert.ok(le(s.using, t), "no downscale without a monitor connection");
      s = neonvmRequestStarted(s, a.neonvmRequest);
    }
    if (a.pluginRequest) {
      assert.ok(le(s.using, a.pluginRequest.target), "plugin asked below usage");
      s = pluginRequestStarted(s, a.pluginRequest, now);
    }
    if (a.monitorUpscale) {
      const { current, target } = a.monitorUpscale;
      assert.ok(target.vCPUs - current.vCPUs <= CU.vCPUs && target.mem - current.mem <= CU.mem);
      assert.ok(le(target, s.using), "monitor told of more than the VM has");
      s = monitorRequestStarted(s, "upscale", a.monitorUpscale);
    } else if (a.monitorDownscale) {
      const { current, target } = a.monitorDownscale;
      assert.ok(current.vCPUs - target.vCPUs <= CU.vCPUs && current.mem - target.mem <= CU.mem);
      s = monitorRequestStarted(s, "downscale", a.monitorDownscale);
    }
    switch (step.k) {
      case "metrics":
        s = systemMetricsUpdated(s, {
          loadAverage1Min: step.cu * 0.225,
          loadAverage5Min: step.cu * 0.225,
          memoryUsageBytes: 0,
          memoryCachedBytes: 0,
        }, now);
        break;
      case "time":
        now += step.ms;
        break;
      case "permit": {
        const o = s.plugin.ongoing;
        if (o) {
          const p = {
            vCPUs: Math.round(s.using.vCPUs + (o.requested.vCPUs - s.using.vCPUs) * step.frac),
            mem: Math.round(s.using.mem + (o.requested.mem - s.using.mem) * step.frac),
          };
          s = pluginRequestSucceeded(s, s.plugin.generation, p, false, now).state;
        }
        break;
      }
      case "pluginFail":
        s = pluginRequestFailed(s, s.plugin.generation, now);
        break;
      case "neonvmOk":
        s = neonvmRequestSucceeded(s);
        break;
      case "neonvmFail":
        if (s.neonvm.ongoing) s = neonvmRequestFailed(s, now);
        break;
      case "monOk":
        if (s.monitor.ongoing?.kind === "upscale") {
          s = monitorUpscaleSucceeded(s, s.monitor.generation, now);
        } else s = monitorDownscaleResult(s, s.monitor.generation, true, now);
        break;
      case "monDeny":
        s = monitorDownscaleResult(s, s.monitor.generation, false, now);
        break;
      case "monFail":
        s = monitorRequestFailed(s, s.monitor.generation, now);
        break;
      case "connect":
        if (s.monitor.approved === undefined) s = monitorConnected(s);
        break;
      case "disconnect":
        s = monitorDisconnected(s);
        break;
      case "upscaleReq":
        s = monitorUpscaleRequested(s, now);
        break;
      case "schedRestart":
        s = schedulerChanged(s);
        break;
      case "bounds":
        s = vmUpdated(s, {
          ...s.vm,
          cpu: { ...s.vm.cpu, min: step.minCu * 250, max: step.maxCu * 250 },
          mem: { ...s.vm.mem, min: step.minCu * GiB, max: step.maxCu * GiB },
        });
        break;
    }
    // The monitor is never told of more than the VM has been given.
    if (s.monitor.approved && s.neonvm.ongoing === undefined) {
      assert.ok(le(s.monitor.approved, maxOf(s.using, s.monitor.requestedUpscale?.base)));
    }
  }
}

Deno.test("actions never exceed the permit or the bounds, and monitor steps are ≤ 1 CU", () => {
  fc.assert(
    fc.property(fc.array(stepArb, { maxLength: 80 }), (steps) => run(CONFIG, steps)),
    { numRuns: 300 },
  );
});

Deno.test("with a downscale stabilization window: same safety, and no downscale below the window", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 90_000 }),
      fc.array(stepArb, { maxLength: 80 }),
      (windowMs, steps) => run({ ...CONFIG, downscaleStabilizationMs: windowMs }, steps),
    ),
    { numRuns: 300 },
  );
});
