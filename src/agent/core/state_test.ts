/**
 * Scenario tests of the agent core on a FakeClock: each step asserts the WHOLE action set the core
 * returns, waits included, for every rule of §3.5, plus the reference's known failure modes (each
 * test named after its cause). Pure: no I/O.
 */
import assert from "node:assert/strict";
import { defaultAgentConfig } from "../../api/agent_config.ts";
import { GiB, MiB, type Resources } from "../../api/quantity.ts";
import { FakeClock } from "../../lib/clock.ts";
import type { SystemMetrics } from "./metrics.ts";
import {
  type Actions,
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

const CONFIG: CoreConfig = coreConfigFrom(defaultAgentConfig());
const cu = (n: number): Resources => ({ vCPUs: 250 * n, mem: n * GiB });
const rev = (value: number, flags = 0) => ({ value, flags });

const VM: VmInfo = {
  namespace: "default",
  name: "vm1",
  cpu: { min: 250, max: 1000, use: 250 },
  mem: { min: GiB, max: 4 * GiB, use: GiB },
  slotSizeBytes: GiB,
  config: undefined,
  currentRevision: undefined,
};

/** System metrics whose goal is exactly `n` CU (load drives it; memory usage is small). */
const metricsFor = (n: number, memUsageBytes = 100 * MiB): SystemMetrics => ({
  loadAverage1Min: n * 0.25 * 0.9,
  loadAverage5Min: n * 0.25 * 0.9,
  memoryUsageBytes: memUsageBytes,
  memoryCachedBytes: 0,
});

/** Drives one runner's core the way io/ does, on a fake clock. */
class Sim {
  s: State;
  clock = new FakeClock(1_000_000);
  constructor(vm: VmInfo = VM, config: CoreConfig = CONFIG) {
    this.s = initialState(config, vm);
  }
  get now() {
    return this.clock.now();
  }
  decide(): Actions {
    const d = decide(this.s, this.now);
    this.s = d.state;
    return d.actions;
  }
  async advance(ms: number) {
    await this.clock.advance(ms);
  }
  metrics(n: number, memUsageBytes?: number) {
    this.s = systemMetricsUpdated(this.s, metricsFor(n, memUsageBytes), this.now);
  }
  startPlugin(a: Actions) {
    assert.ok(a.pluginRequest);
    this.s = pluginRequestStarted(this.s, a.pluginRequest, this.now);
  }
  permit(p: Resources, migrate = false) {
    const r = pluginRequestSucceeded(this.s, this.s.plugin.generation, p, migrate, this.now);
    this.s = r.state;
    return r.check;
  }
  startNeonvm(a: Actions) {
    assert.ok(a.neonvmRequest);
    this.s = neonvmRequestStarted(this.s, a.neonvmRequest);
  }
  startUp(a: Actions) {
    assert.ok(a.monitorUpscale);
    this.s = monitorRequestStarted(this.s, "upscale", a.monitorUpscale);
  }
  startDown(a: Actions) {
    assert.ok(a.monitorDownscale);
    this.s = monitorRequestStarted(this.s, "downscale", a.monitorDownscale);
  }
  /** A runner whose VM already uses `n` CU, in a steady state (permit, monitor, metrics). */
  static at(n: number): Sim {
    const sim = new Sim({
      ...VM,
      cpu: { ...VM.cpu, use: 250 * n },
      mem: { ...VM.mem, use: n * GiB },
    });
    sim.steady(n);
    assert.deepEqual(sim.s.targetRevision, rev(0), "no revision bump while settling");
    return sim;
  }
  /** Gets to a steady state at `using` CU with a permit, a monitor connection and metrics. */
  steady(n: number) {
    this.metrics(n);
    this.s = monitorConnected(this.s);
    let a = this.decide();
    this.startPlugin(a);
    this.permit(a.pluginRequest!.target);
    for (let i = 0; i < 20; i++) {
      a = this.decide();
      if (a.neonvmRequest) {
        this.startNeonvm(a);
        this.s = neonvmRequestSucceeded(this.s);
      } else if (a.monitorUpscale) {
        this.startUp(a);
        this.s = monitorUpscaleSucceeded(this.s, this.s.monitor.generation, this.now);
      } else if (a.pluginRequest) {
        this.startPlugin(a);
        this.permit(a.pluginRequest.target);
      } else break;
    }
    assert.deepEqual(this.s.using, cu(n));
    assert.deepEqual(this.s.monitor.approved, cu(n));
  }
}

Deno.test("startup: first permit request reports current usage, then a 15 s periodic wait", async () => {
  const sim = new Sim();
  let a = sim.decide();
  assert.deepEqual(a, {
    pluginRequest: { lastPermit: null, target: cu(1), metrics: null, targetRevision: rev(0) },
  });
  sim.startPlugin(a);
  assert.deepEqual(sim.decide(), {});
  await sim.advance(300);
  assert.deepEqual(sim.permit(cu(1)), { ok: true });
  assert.deepEqual(sim.decide(), { wait: { durationMs: 14_700 } });
  await sim.advance(14_700);
  a = sim.decide();
  assert.deepEqual(a, {
    pluginRequest: { lastPermit: cu(1), target: cu(1), metrics: null, targetRevision: rev(0) },
  });
});

Deno.test("plain upscale: permit, then NeonVM patch, then monitor notification", async () => {
  const sim = Sim.at(1);
  await sim.advance(1000);
  sim.metrics(3);
  let a = sim.decide();
  const up3 = rev(1, 1);
  assert.deepEqual(a, {
    pluginRequest: {
      lastPermit: cu(1),
      target: cu(3),
      metrics: { loadAvg1M: 3 * 0.225 },
      targetRevision: up3,
    },
  });
  sim.startPlugin(a);
  assert.deepEqual(sim.decide(), {}, "nothing while the permit request is in flight");
  await sim.advance(200);
  sim.permit(cu(3));
  a = sim.decide();
  assert.deepEqual(a, {
    neonvmRequest: { current: cu(1), target: cu(3), targetRevision: up3 },
    wait: { durationMs: 14_800 },
  });
  sim.startNeonvm(a);
  assert.deepEqual(sim.decide(), { wait: { durationMs: 14_800 } });
  await sim.advance(500);
  sim.s = neonvmRequestSucceeded(sim.s);
  a = sim.decide();
  // At most 1 CU per monitor message.
  assert.deepEqual(a, {
    monitorUpscale: { current: cu(1), target: cu(2), targetRevision: up3 },
    wait: { durationMs: 14_300 },
  });
  sim.startUp(a);
  sim.s = monitorUpscaleSucceeded(sim.s, sim.s.monitor.generation, sim.now);
  a = sim.decide();
  assert.deepEqual(a, {
    monitorUpscale: { current: cu(2), target: cu(3), targetRevision: up3 },
    wait: { durationMs: 14_300 },
  });
  sim.startUp(a);
  sim.s = monitorUpscaleSucceeded(sim.s, sim.s.monitor.generation, sim.now);
  assert.deepEqual(sim.decide(), { wait: { durationMs: 14_300 } });
});

Deno.test("plain downscale: monitor approval, then patch, then the scheduler is told", async () => {
  const sim = Sim.at(3);
  await sim.advance(1000);
  sim.metrics(1);
  let a = sim.decide();
  const down = rev(1, 2);
  assert.deepEqual(a, {
    monitorDownscale: { current: cu(3), target: cu(2), targetRevision: down },
    wait: { durationMs: 14_000 },
  });
  sim.startDown(a);
  assert.deepEqual(sim.decide(), { wait: { durationMs: 14_000 } });
  sim.s = monitorDownscaleResult(sim.s, sim.s.monitor.generation, true, sim.now);
  a = sim.decide();
  // The patch may follow the approval (2 CU) while the next monitor step (1 CU) goes out.
  assert.deepEqual(a, {
    neonvmRequest: { current: cu(3), target: cu(2), targetRevision: down },
    monitorDownscale: { current: cu(2), target: cu(1), targetRevision: down },
    wait: { durationMs: 14_000 },
  });
  sim.startNeonvm(a);
  sim.startDown(a);
  sim.s = neonvmRequestSucceeded(sim.s);
  a = sim.decide();
  // The scheduler hears of the decrease only after it is applied.
  assert.deepEqual(a, {
    pluginRequest: {
      lastPermit: cu(3),
      target: cu(2),
      metrics: { loadAvg1M: 0.225 },
      targetRevision: down,
    },
  });
  sim.startPlugin(a);
  sim.permit(cu(2));
  sim.s = monitorDownscaleResult(sim.s, sim.s.monitor.generation, true, sim.now);
  a = sim.decide();
  assert.deepEqual(a, {
    neonvmRequest: { current: cu(2), target: cu(1), targetRevision: down },
    wait: { durationMs: 15_000 },
  });
});

Deno.test("denied permit: back off 2 s, then ask again", async () => {
  const sim = Sim.at(1);
  await sim.advance(1000);
  sim.metrics(4);
  let a = sim.decide();
  sim.startPlugin(a);
  sim.permit(cu(1));
  assert.deepEqual(sim.decide(), { wait: { durationMs: 2000 } });
  await sim.advance(2000);
  a = sim.decide();
  assert.deepEqual(a, {
    pluginRequest: {
      lastPermit: cu(1),
      target: cu(4),
      metrics: { loadAvg1M: 0.9 },
      targetRevision: rev(1, 1),
    },
  });
});

Deno.test("partial permit: patch up to the permit in whole slots, notify, retry the rest in 2 s", async () => {
  const sim = Sim.at(1);
  await sim.advance(1000);
  sim.metrics(4);
  let a = sim.decide();
  sim.startPlugin(a);
  // CPU fully granted; memory granted 2.5 GiB, not a whole slot.
  sim.permit({ vCPUs: 1000, mem: 2.5 * GiB });
  a = sim.decide();
  assert.deepEqual(a, {
    neonvmRequest: {
      current: cu(1),
      target: { vCPUs: 1000, mem: 2 * GiB },
      targetRevision: rev(1, 1),
    },
    wait: { durationMs: 2000 },
  });
  sim.startNeonvm(a);
  sim.s = neonvmRequestSucceeded(sim.s);
  a = sim.decide();
  assert.deepEqual(a, {
    monitorUpscale: { current: cu(1), target: cu(2), targetRevision: rev(1, 1) },
    wait: { durationMs: 2000 },
  });
});

Deno.test("a permit above the request or below usage is a failed request (3 s retry)", async () => {
  const sim = Sim.at(1);
  await sim.advance(1000);
  sim.metrics(2);
  const a = sim.decide();
  sim.startPlugin(a);
  const check = sim.permit(cu(3));
  assert.deepEqual(check, { ok: false, error: "permit exceeds the requested resources" });
  assert.deepEqual(sim.decide(), { wait: { durationMs: 3000 } });
});

Deno.test("refused downscale holds for 5 s, then is retried", async () => {
  const sim = Sim.at(2);
  await sim.advance(1000);
  sim.metrics(1);
  let a = sim.decide();
  sim.startDown(a);
  await sim.advance(100);
  sim.s = monitorDownscaleResult(sim.s, sim.s.monitor.generation, false, sim.now);
  a = sim.decide();
  assert.deepEqual(a, { wait: { durationMs: 5000 } });
  await sim.advance(5000);
  a = sim.decide();
  // Denial flips the desired back up (revision 2, upscale); the retry is revision 3.
  assert.deepEqual(a, {
    monitorDownscale: { current: cu(2), target: cu(1), targetRevision: rev(3, 2) },
    wait: { durationMs: 8900 },
  });
});

Deno.test("requested upscale: the monitor's UpscaleRequest scales memory up without metrics", async () => {
  const sim = Sim.at(1);
  await sim.advance(1000);
  sim.s = monitorUpscaleRequested(sim.s, sim.now);
  const a = sim.decide();
  assert.deepEqual(a, {
    pluginRequest: {
      lastPermit: cu(1),
      target: cu(2),
      metrics: { loadAvg1M: 0.225 },
      targetRevision: rev(1, 1),
    },
    // Until the unmet request's hard cap (6 × 10 s).
    wait: { durationMs: 60_000 },
  });
});

Deno.test("failures wait their retry periods: plugin 3 s, NeonVM 5 s, monitor 3 s", async () => {
  const sim = Sim.at(1);
  await sim.advance(1000);
  sim.metrics(2);
  let a = sim.decide();
  sim.startPlugin(a);
  sim.s = pluginRequestFailed(sim.s, sim.s.plugin.generation, sim.now);
  assert.deepEqual(sim.decide(), { wait: { durationMs: 3000 } });
  await sim.advance(3000);
  a = sim.decide();
  assert.ok(a.pluginRequest);
  sim.startPlugin(a);
  sim.permit(cu(2));
  a = sim.decide();
  sim.startNeonvm(a);
  sim.s = neonvmRequestFailed(sim.s, sim.now);
  assert.deepEqual(sim.decide(), { wait: { durationMs: 5000 } });
  await sim.advance(5000);
  a = sim.decide();
  assert.deepEqual(a, {
    neonvmRequest: { current: cu(1), target: cu(2), targetRevision: rev(1, 1) },
    wait: { durationMs: 10_000 },
  });
  sim.startNeonvm(a);
  sim.s = neonvmRequestSucceeded(sim.s);
  a = sim.decide();
  sim.startUp(a);
  sim.s = monitorRequestFailed(sim.s, sim.s.monitor.generation, sim.now);
  assert.deepEqual(sim.decide(), { wait: { durationMs: 3000 } });
  await sim.advance(3000);
  assert.deepEqual(sim.decide(), {
    monitorUpscale: { current: cu(1), target: cu(2), targetRevision: rev(1, 1) },
    wait: { durationMs: 7000 },
  });
});

Deno.test("bounds change: a lowered max scales down through the monitor; a raised min scales up", async () => {
  const sim = Sim.at(3);
  await sim.advance(1000);
  sim.s = vmUpdated(sim.s, {
    ...VM,
    cpu: { ...VM.cpu, max: 500 },
    mem: { ...VM.mem, max: 2 * GiB },
  });
  let a = sim.decide();
  assert.deepEqual(a, {
    monitorDownscale: { current: cu(3), target: cu(2), targetRevision: rev(1, 2) },
    wait: { durationMs: 14_000 },
  });
  const sim2 = Sim.at(1);
  await sim2.advance(1000);
  sim2.s = vmUpdated(sim2.s, {
    ...VM,
    cpu: { ...VM.cpu, min: 750 },
    mem: { ...VM.mem, min: 3 * GiB },
  });
  a = sim2.decide();
  assert.deepEqual(a, {
    pluginRequest: {
      lastPermit: cu(1),
      target: cu(3),
      metrics: { loadAvg1M: 0.225 },
      targetRevision: rev(1, 1),
    },
  });
});

Deno.test("without a monitor connection there is no downscale, but upscale still works", async () => {
  const sim = Sim.at(2);
  sim.s = monitorDisconnected(sim.s);
  await sim.advance(1000);
  sim.metrics(1);
  assert.deepEqual(sim.decide(), { wait: { durationMs: 14_000 } });
  sim.metrics(3);
  const a = sim.decide();
  assert.deepEqual(a, {
    pluginRequest: {
      lastPermit: cu(2),
      target: cu(3),
      metrics: { loadAvg1M: 0.675 },
      targetRevision: rev(2, 1),
    },
  });
  sim.startPlugin(a);
  sim.permit(cu(3));
  assert.deepEqual(sim.decide(), {
    neonvmRequest: { current: cu(2), target: cu(3), targetRevision: rev(2, 1) },
    wait: { durationMs: 15_000 },
  });
});

// ---------------------------------------------------------------------------------------------
// Known failure modes of the reference, each named after its cause
// ---------------------------------------------------------------------------------------------

Deno.test("missed memory upscale under fast allocation: slow permit outlives the 10 s window", async () => {
  const sim = Sim.at(1);
  await sim.advance(1000);
  // Memory spikes faster than metrics: the monitor asks; the scheduler keeps denying for 12 s.
  sim.s = monitorUpscaleRequested(sim.s, sim.now);
  for (let t = 0; t < 12_000; t += 2000) {
    const a = sim.decide();
    assert.ok(a.pluginRequest, `still asking at +${t} ms`);
    assert.deepEqual(a.pluginRequest.target, cu(2));
    sim.startPlugin(a);
    sim.permit(cu(1));
    await sim.advance(2000);
  }
  // The reference forgot the request after 10 s; here it is still honoured.
  let a = sim.decide();
  assert.deepEqual(a.pluginRequest?.target, cu(2));
  sim.startPlugin(a);
  sim.permit(cu(2));
  a = sim.decide();
  assert.deepEqual(a.neonvmRequest?.target, cu(2));
  sim.startNeonvm(a);
  sim.s = neonvmRequestSucceeded(sim.s);
  a = sim.decide();
  sim.startUp(a);
  sim.s = monitorUpscaleSucceeded(sim.s, sim.s.monitor.generation, sim.now);
  // Satisfied: held 10 s more against stale low metrics, then released.
  assert.deepEqual(sim.decide(), { wait: { durationMs: 10_000 } });
  await sim.advance(10_000);
  sim.metrics(1);
  assert.ok(sim.decide().monitorDownscale, "downscale allowed once the window passes");
});

Deno.test("missed memory upscale under fast allocation: the monitor fast path beats a metrics downscale", async () => {
  const sim = Sim.at(2);
  await sim.advance(1000);
  // Lagging metrics say 1 CU; the monitor approves the downscale, then at once asks for memory.
  sim.metrics(1);
  let a = sim.decide();
  sim.startDown(a);
  sim.s = monitorUpscaleRequested(sim.s, sim.now);
  sim.s = monitorDownscaleResult(sim.s, sim.s.monitor.generation, true, sim.now);
  a = sim.decide();
  // No NeonVM downscale: the request's base (2 CU, before the downscale) wins; the monitor is
  // told again of the 2 CU it still has.
  assert.deepEqual(a, {
    pluginRequest: {
      lastPermit: cu(2),
      target: cu(3),
      metrics: { loadAvg1M: 0.225 },
      targetRevision: rev(2, 1),
    },
    monitorUpscale: { current: cu(1), target: cu(2), targetRevision: rev(2, 1) },
    wait: { durationMs: 60_000 },
  });
});

Deno.test("partial permit: never patch above the permit, and memory stays in whole slots", async () => {
  const sim = Sim.at(1);
  await sim.advance(1000);
  sim.metrics(4);
  const a = sim.decide();
  sim.startPlugin(a);
  sim.permit({ vCPUs: 500, mem: 1.9 * GiB });
  // Memory rounds down to 1 GiB = unchanged; CPU goes to 500m. The rest is asked again in 2 s.
  assert.deepEqual(sim.decide(), {
    neonvmRequest: { current: cu(1), target: { vCPUs: 500, mem: GiB }, targetRevision: rev(1, 1) },
    wait: { durationMs: 2000 },
  });
});

Deno.test("stuck after a scheduler restart in the middle of an upscale: re-asks the new scheduler", async () => {
  const sim = Sim.at(1);
  await sim.advance(1000);
  sim.metrics(2);
  let a = sim.decide();
  sim.startPlugin(a);
  const oldGen = sim.s.plugin.generation;
  // The scheduler restarts; its answer never comes (or comes late).
  await sim.advance(500);
  sim.s = schedulerChanged(sim.s);
  a = sim.decide();
  assert.deepEqual(a, {
    pluginRequest: {
      lastPermit: cu(1),
      target: cu(1),
      metrics: { loadAvg1M: 0.45 },
      targetRevision: rev(1, 1),
    },
  });
  sim.startPlugin(a);
  // A late answer from the old scheduler is ignored.
  const late = pluginRequestSucceeded(sim.s, oldGen, cu(2), false, sim.now);
  assert.equal(late.check.ok, false);
  assert.equal(late.state, sim.s);
  sim.permit(cu(1));
  a = sim.decide();
  assert.deepEqual(a.pluginRequest?.target, cu(2));
});

Deno.test("metrics that vanish: stale metrics stop downscaling instead of driving it", async () => {
  const sim = Sim.at(3);
  await sim.advance(1000);
  // The last scrape said 1 CU, then the exporter died. Beyond 3 scrapes + timeout (17 s) the
  // reference would still downscale on it; here the metrics count as absent.
  sim.metrics(1);
  await sim.advance(17_001);
  assert.deepEqual(sim.decide(), {
    pluginRequest: { lastPermit: cu(3), target: cu(3), metrics: null, targetRevision: rev(0) },
  });
  // Fresh metrics saying 1 CU: downscaling resumes.
  sim.metrics(1);
  assert.deepEqual(sim.decide(), {
    pluginRequest: {
      lastPermit: cu(3),
      target: cu(3),
      metrics: { loadAvg1M: 0.225 },
      targetRevision: rev(1, 2),
    },
    monitorDownscale: { current: cu(3), target: cu(2), targetRevision: rev(1, 2) },
  });
});

Deno.test("a migrate answer stops upscaling patches", async () => {
  const sim = Sim.at(1);
  await sim.advance(1000);
  sim.metrics(2);
  const a = sim.decide();
  sim.startPlugin(a);
  sim.permit(cu(2), true);
  assert.deepEqual(sim.decide(), { wait: { durationMs: 15_000 } });
});

Deno.test("config annotation: enabling LFC metrics holds downscaling until LFC metrics arrive", async () => {
  const sim = Sim.at(3);
  sim.s = vmUpdated(sim.s, { ...sim.s.vm, config: { enableLFCMetrics: true } });
  await sim.advance(1000);
  sim.metrics(1);
  // System metrics alone are no longer all the metrics: no downscale.
  assert.deepEqual(sim.decide(), { wait: { durationMs: 14_000 } });
  sim.s = vmUpdated(sim.s, { ...sim.s.vm, config: { enableLFCMetrics: false } });
  assert.deepEqual(sim.decide().monitorDownscale?.target, cu(2));
});
