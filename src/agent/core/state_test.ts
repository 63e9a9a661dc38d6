/**
 * Scenario tests of the agent core on a FakeClock: each step asserts the WHOLE action set the core
 * returns, waits included, for every rule of §3.5, plus the reference's known failure modes (each
 * test named after its cause). Pure: no I/O.
 */
import assert from "node:assert/strict";
import { defaultAgentConfig, parseAgentConfig } from "../../api/agent_config.ts";
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
  static at(n: number, config: CoreConfig = CONFIG): Sim {
    const sim = new Sim({
      ...VM,
      cpu: { ...VM.cpu, use: 250 * n },
      mem: { ...VM.mem, use: n * GiB },
    }, config);
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

// ---------------------------------------------------------------------------------------------
// Downscale stabilization window (our extension; 0 = the reference)
// ---------------------------------------------------------------------------------------------

// 62 s: off the 5 s metrics grid and the 15 s permit grid, so an action exactly at the end of a
// window can only come from the core's own wake-up (its Wait action).
const W62: CoreConfig = { ...CONFIG, downscaleStabilizationMs: 62_000 };

/** What the driver saw: every NeonVM patch and monitor downscale request, with its time. */
interface Happened {
  readonly atMs: number;
  readonly kind: "patch" | "monitorDown" | "pluginUp";
  readonly target: Resources;
  /** True when a metrics event arrived at this same instant. */
  readonly onMetrics: boolean;
}

/**
 * Runs the core the way io/ does until `untilMs`: metrics of `cuAt(t)` CU every 5 s from
 * `firstMetricsMs`, every permit granted in full, every patch and monitor request succeeding at
 * once; between events it sleeps for the core's wait (never longer), so a decision at an instant
 * without a metrics event came from a Wait action.
 */
async function drive(
  sim: Sim,
  firstMetricsMs: number,
  untilMs: number,
  cuAt: (t: number) => number,
): Promise<Happened[]> {
  const seen: Happened[] = [];
  let nextMetricsMs = firstMetricsMs;
  while (sim.now <= untilMs) {
    let onMetrics = false;
    if (sim.now === nextMetricsMs) {
      sim.metrics(cuAt(sim.now));
      nextMetricsMs += 5000;
      onMetrics = true;
    }
    let a = sim.decide();
    for (
      let i = 0;
      i < 20 && (a.pluginRequest || a.neonvmRequest || a.monitorUpscale || a.monitorDownscale);
      i++
    ) {
      if (a.pluginRequest) {
        sim.startPlugin(a);
        if (hasGreater(a.pluginRequest.target, sim.s.using)) {
          seen.push({ atMs: sim.now, kind: "pluginUp", target: a.pluginRequest.target, onMetrics });
        }
        sim.permit(a.pluginRequest.target);
      }
      if (a.neonvmRequest) {
        seen.push({ atMs: sim.now, kind: "patch", target: a.neonvmRequest.target, onMetrics });
        sim.startNeonvm(a);
        sim.s = neonvmRequestSucceeded(sim.s);
      }
      if (a.monitorUpscale) {
        sim.startUp(a);
        sim.s = monitorUpscaleSucceeded(sim.s, sim.s.monitor.generation, sim.now);
      } else if (a.monitorDownscale) {
        seen.push({
          atMs: sim.now,
          kind: "monitorDown",
          target: a.monitorDownscale.target,
          onMetrics,
        });
        sim.startDown(a);
        sim.s = monitorDownscaleResult(sim.s, sim.s.monitor.generation, true, sim.now);
      }
      a = sim.decide();
    }
    const wakeMs = a.wait === undefined ? Infinity : sim.now + a.wait.durationMs;
    const next = Math.min(wakeMs, nextMetricsMs, untilMs + 1);
    assert.ok(next > sim.now, "the core asked to be woken at once with nothing to do");
    await sim.advance(next - sim.now);
  }
  return seen;
}

const hasGreater = (a: Resources, b: Resources) => a.vCPUs > b.vCPUs || a.mem > b.mem;

Deno.test("stabilization: defaults to 0, which keeps no history and downscales at once", async () => {
  assert.equal(CONFIG.downscaleStabilizationMs, 0);
  const cfg = parseAgentConfig({ scaling: { downscaleStabilizationSeconds: 62 } });
  assert.deepEqual(coreConfigFrom(cfg), W62);
  const sim = Sim.at(2);
  const t0 = sim.now;
  const seen = await drive(sim, t0 + 1000, t0 + 30_000, () => 1);
  assert.deepEqual(seen.filter((h) => h.kind === "patch").map((h) => [h.atMs - t0, h.target]), [
    [1000, cu(1)],
  ]);
  assert.deepEqual(sim.s.desiredHistory, []);
});

Deno.test("stabilization: a downscale is held for the window after the higher goal, then happens on the core's own wake-up", async () => {
  const sim = Sim.at(2, W62);
  const t0 = sim.now; // The last decision that wanted 2 CU (metrics of 2 CU at t0).
  await sim.advance(1000);
  sim.metrics(1);
  // The reference would ask the monitor to downscale now; held, only the plugin tick is due.
  assert.deepEqual(sim.decide(), { wait: { durationMs: 14_000 } });
  assert.deepEqual(sim.s.desiredHistory, [
    { atMs: t0, desired: cu(2) },
    { atMs: t0 + 1000, desired: cu(1) },
  ]);
  const seen = await drive(sim, t0 + 6000, t0 + 90_000, () => 1);
  const downs = seen.filter((h) => h.kind !== "pluginUp");
  assert.deepEqual(downs.map((h) => [h.atMs - t0, h.kind, h.target, h.onMetrics]), [
    [62_000, "monitorDown", cu(1), false],
    [62_000, "patch", cu(1), false],
  ]);
  // History is pruned to the window: only the newest sample remains.
  assert.deepEqual(sim.s.desiredHistory.map((e) => e.desired), [cu(1)]);
});

Deno.test("stabilization: a falling goal steps down one level per window, each from its own last sample", async () => {
  const sim = Sim.at(3, W62);
  const t0 = sim.now;
  // Metrics every 5 s from t0+1 s: 2 CU until t0+16 s (last at t0+11 s), then 1 CU. The last
  // decision that wanted 2 CU is the periodic permit request at t0+15 s (metrics still fresh).
  const seen = await drive(sim, t0 + 1000, t0 + 120_000, (t) => (t - t0 < 16_000 ? 2 : 1));
  assert.deepEqual(
    seen.filter((h) => h.kind === "patch").map((h) => [h.atMs - t0, h.target, h.onMetrics]),
    [
      [62_000, cu(2), false],
      [77_000, cu(1), false],
    ],
  );
});

Deno.test("stabilization: the TCG flap (1 CU, 2 CU, 1 CU, ... every 5 s) makes no patches, then settles once", async () => {
  const flap = (t: number, t0: number) =>
    t - t0 < 120_000 ? (Math.floor((t - t0) / 5000) % 2 === 0 ? 1 : 2) : 1;
  const ref = Sim.at(2);
  const r0 = ref.now;
  const refSeen = await drive(ref, r0 + 1000, r0 + 200_000, (t) => flap(t, r0));
  const refPatches = refSeen.filter((h) => h.kind === "patch").length;
  // The reference flips at every tick: each 5 s a downscale or an upscale patch.
  assert.ok(refPatches >= 20, `the reference patched only ${refPatches} times`);

  const sim = Sim.at(2, W62);
  const t0 = sim.now;
  const seen = await drive(sim, t0 + 1000, t0 + 200_000, (t) => flap(t, t0));
  // Last 2-CU metrics at t0+116 s, last decision on them the permit request at t0+120 s; held
  // until t0+182 s, then one downscale.
  assert.deepEqual(
    seen.filter((h) => h.kind === "patch").map((h) => [h.atMs - t0, h.target]),
    [[182_000, cu(1)]],
  );
});

Deno.test("stabilization: an upscale is never delayed, even while a downscale is held", async () => {
  // The same events with and without a window give the same upscale actions at the same times.
  for (const config of [CONFIG, W62]) {
    const sim = Sim.at(2, config);
    const t0 = sim.now;
    await sim.advance(1000);
    sim.metrics(1);
    assert.equal(sim.decide().monitorDownscale === undefined, config === W62);
    if (config === W62) {
      await sim.advance(4000);
      sim.metrics(4);
      let a = sim.decide();
      assert.deepEqual(a, {
        pluginRequest: {
          lastPermit: cu(2),
          target: cu(4),
          metrics: { loadAvg1M: 0.9 },
          targetRevision: rev(1, 1),
        },
      });
      sim.startPlugin(a);
      sim.permit(cu(4));
      a = sim.decide();
      assert.deepEqual(a, {
        neonvmRequest: { current: cu(2), target: cu(4), targetRevision: rev(1, 1) },
        // The next periodic permit request; no wait for the (now pointless) hold.
        wait: { durationMs: 15_000 },
      });
      assert.equal(sim.now - t0, 5000);
    }
  }
  // Against the reference: the upscale from a steady state is the same action set.
  const a0 = Sim.at(1);
  const a1 = Sim.at(1, W62);
  for (const sim of [a0, a1]) {
    await sim.advance(5000);
    sim.metrics(3);
  }
  assert.deepEqual(a1.decide(), a0.decide());
});

Deno.test("stabilization: an upscale the scheduler refused is not held up after the goal drops", async () => {
  const sim = Sim.at(1, W62);
  await sim.advance(1000);
  sim.metrics(3);
  const a = sim.decide();
  assert.deepEqual(a.pluginRequest?.target, cu(3));
  sim.startPlugin(a);
  sim.permit(cu(1));
  await sim.advance(1000);
  sim.metrics(1);
  // Decreases are held only down to what the VM uses: no re-asking for 3 CU after the backoff.
  assert.deepEqual(sim.decide(), { wait: { durationMs: 14_000 } });
  await sim.advance(1000);
  assert.deepEqual(sim.decide(), { wait: { durationMs: 13_000 } });
});

Deno.test("stabilization: a lowered max applies at once; a denied downscale keeps its 5 s retry", async () => {
  const sim = Sim.at(3, W62);
  await sim.advance(1000);
  sim.s = vmUpdated(sim.s, {
    ...VM,
    cpu: { ...VM.cpu, max: 500 },
    mem: { ...VM.mem, max: 2 * GiB },
  });
  assert.deepEqual(sim.decide().monitorDownscale?.target, cu(2));

  // The window has passed: a downscale is asked for, refused, and retried 5 s later as in the
  // reference (the refusal is not stretched to the window).
  const d = Sim.at(2, W62);
  await d.advance(63_000);
  d.metrics(1);
  let a = d.decide();
  assert.deepEqual(a.monitorDownscale?.target, cu(1));
  d.startPlugin(a); // The periodic request, overdue after 63 s.
  d.permit(a.pluginRequest!.target);
  d.startDown(a);
  d.s = monitorDownscaleResult(d.s, d.s.monitor.generation, false, d.now);
  assert.deepEqual(d.decide(), { wait: { durationMs: 5000 } });
  await d.advance(5000);
  d.metrics(1);
  a = d.decide();
  assert.deepEqual(a.monitorDownscale?.target, cu(1));
});
