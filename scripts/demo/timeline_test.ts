/**
 * Tests for the demo timeline: reaction times found from recorded points, conversion to render
 * samples, percentiles.
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  between,
  type GuestObservation,
  percentile,
  type Point,
  pressurePlan,
  reactionOf,
  stepTimes,
  summarise,
  toSamples,
  type VmObservation,
} from "./timeline.ts";

const GiB = 1024 ** 3;

function pt(tSec: number, stage: string, cpu: number, cpuStatus: number, mem = GiB): Point {
  return {
    tSec,
    stage,
    loadAvg1m: 1,
    memUsedBytes: GiB / 2,
    cpuUseMilli: cpu,
    memUseBytes: mem,
    cpuStatusMilli: cpuStatus,
    memStatusBytes: mem,
  };
}

Deno.test("reactionOf times the patch, the guest and the target from the stage start", () => {
  const points = [
    pt(0, "idle", 250, 250),
    pt(10, "cpu-load", 250, 250),
    pt(14, "cpu-load", 250, 250),
    pt(17, "cpu-load", 1000, 250),
    pt(19, "cpu-load", 1000, 1000),
    pt(30, "cpu-load", 2000, 2000),
    pt(40, "after", 2000, 2000),
    pt(50, "after", 500, 2000),
    pt(52, "after", 500, 500),
  ];
  assert.deepEqual(reactionOf(points, "cpu-load", "up", 2000), {
    stage: "cpu-load",
    direction: "up",
    resource: "cpu",
    patchSec: 7,
    guestSec: 9,
    targetSec: 20,
  });
  assert.deepEqual(reactionOf(points, "after", "down", 250), {
    stage: "after",
    direction: "down",
    resource: "cpu",
    patchSec: 10,
    guestSec: 12,
    targetSec: undefined,
  });
  assert.equal(reactionOf(points, "missing", "up"), undefined);
});

Deno.test("reactionOf sees memory when CPU stays", () => {
  const points = [pt(0, "mem", 250, 250), pt(3, "mem", 250, 250, 3 * GiB)];
  const r = reactionOf(points, "mem", "up");
  assert.equal(r?.resource, "memory");
  assert.equal(r?.patchSec, 3);
  assert.equal(r?.guestSec, 3);
});

Deno.test("toSamples prefers what the guest has", () => {
  const p = { ...pt(1, "s", 1000, 250), cpuStatusMilli: undefined };
  const [a, b] = toSamples([pt(0, "s", 1000, 250), p]);
  assert.equal(a?.cpuMilli, 250);
  assert.equal(b?.cpuMilli, 1000);
});

Deno.test("percentile: nearest rank, within the values, monotone in p", () => {
  assert.equal(percentile([], 50), undefined);
  assert.equal(percentile([3, 1, 2], 50), 2);
  assert.equal(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 95), 10);
  fc.assert(fc.property(
    fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: 1 }),
    fc.integer({ min: 0, max: 100 }),
    fc.integer({ min: 0, max: 100 }),
    (vs, p, q) => {
      const a = percentile(vs, Math.min(p, q))!;
      const b = percentile(vs, Math.max(p, q))!;
      return vs.includes(a) && vs.includes(b) && a <= b;
    },
  ));
});

function obs(tMs: number, o: Partial<VmObservation> = {}): VmObservation {
  return {
    tMs,
    phase: "Running",
    cpuUseMilli: 1000,
    memUseBytes: GiB,
    cpuStatusMilli: 1000,
    memStatusBytes: GiB,
    cpuRequestedMilli: 1000,
    memRequestedBytes: GiB,
    cpuApprovedMilli: 1000,
    memApprovedBytes: GiB,
    ...o,
  };
}

function guest(tMs: number, o: Partial<GuestObservation> = {}): GuestObservation {
  return { tMs, onlineCpus: 1, memTotalBytes: GiB, load1: 1, wantsMore: false, ...o };
}

Deno.test("stepTimes times each stage of a CPU step from its start and ignores earlier states", () => {
  const t0 = 100_000;
  const base = obs(t0 - 5000);
  const vm = [
    // Before the start: a change that must not count.
    obs(t0 - 1000, { cpuUseMilli: 1250 }),
    obs(t0 + 500),
    obs(t0 + 9000, { cpuRequestedMilli: 1500 }),
    obs(t0 + 9500, { cpuRequestedMilli: 1500, cpuApprovedMilli: 1500 }),
    obs(t0 + 9800, { cpuRequestedMilli: 1500, cpuApprovedMilli: 1500, cpuUseMilli: 1500 }),
    obs(t0 + 12_000, {
      cpuRequestedMilli: 1500,
      cpuApprovedMilli: 1500,
      cpuUseMilli: 1500,
      cpuStatusMilli: 1500,
    }),
  ];
  const g = [
    guest(t0 - 2000, { wantsMore: true, onlineCpus: 2 }),
    guest(t0 + 4000),
    guest(t0 + 6000, { wantsMore: true }),
    guest(t0 + 13_000, { wantsMore: true, onlineCpus: 2 }),
  ];
  const s = stepTimes("cpu", t0, base, guest(t0 - 100), vm, g);
  assert.deepEqual(s, {
    kind: "cpu",
    fromValue: 1000,
    toValue: 1500,
    signalSec: 6,
    requestSec: 9,
    approvedSec: 9.5,
    patchSec: 9.8,
    statusSec: 12,
    guestSec: 13,
  });
});

Deno.test("stepTimes: memory looks only at memory; nothing observed leaves undefined", () => {
  const t0 = 0;
  const base = obs(0);
  const cpuOnly = [obs(1000, { cpuUseMilli: 2000, cpuStatusMilli: 2000 })];
  const none = stepTimes("memory", t0, base, guest(0), cpuOnly, [guest(2000, { onlineCpus: 2 })]);
  assert.equal(none.patchSec, undefined);
  assert.equal(none.statusSec, undefined);
  assert.equal(none.guestSec, undefined);
  assert.equal(none.toValue, undefined);
  const mem = stepTimes(
    "memory",
    t0,
    base,
    guest(0),
    [
      obs(3000, { memUseBytes: 2 * GiB }),
      obs(7000, { memUseBytes: 2 * GiB, memStatusBytes: 2 * GiB }),
    ],
    [guest(8000, { memTotalBytes: 2 * GiB })],
  );
  assert.equal(mem.patchSec, 3);
  assert.equal(mem.toValue, 2 * GiB);
  assert.equal(mem.statusSec, 7);
  assert.equal(mem.guestSec, 8);
  // Without a guest scrape at the start the guest cannot be compared.
  assert.equal(
    stepTimes("memory", t0, base, undefined, [], [guest(8000, { memTotalBytes: 9 * GiB })])
      .guestSec,
    undefined,
  );
});

Deno.test("stepTimes: a stale larger request counts only when it changes again", () => {
  const base = obs(0, { cpuRequestedMilli: 1500 });
  const s = stepTimes("cpu", 0, base, undefined, [
    obs(1000, { cpuRequestedMilli: 1500 }),
    obs(2000, { cpuRequestedMilli: 1750 }),
  ], []);
  assert.equal(s.requestSec, 2);
});

Deno.test("stepTimes never reports a stage before the step or a negative time (property)", () => {
  fc.assert(fc.property(
    fc.integer({ min: 0, max: 1e6 }),
    fc.array(
      fc.record({
        dt: fc.integer({ min: -5000, max: 60_000 }),
        cpu: fc.integer({ min: 0, max: 4000 }),
      }),
    ),
    (t0, changes) => {
      const vm = changes.map((c) => obs(t0 + c.dt, { cpuUseMilli: c.cpu, cpuStatusMilli: c.cpu }))
        .sort((a, b) => a.tMs - b.tMs);
      const s = stepTimes("cpu", t0, obs(t0), undefined, vm, []);
      const first = vm.find((o) => o.tMs >= t0 && o.cpuUseMilli > 1000);
      return first === undefined
        ? s.patchSec === undefined
        : s.patchSec === (first.tMs - t0) / 1000 && s.toValue === first.cpuUseMilli;
    },
  ));
});

Deno.test("summarise counts missing values; between needs both ends", () => {
  const mk = (patchSec: number | undefined) => ({
    ...stepTimes("cpu", 0, obs(0), undefined, [], []),
    patchSec,
  });
  const r = summarise("patch", [mk(3), mk(undefined), mk(1), mk(2)], (s) => s.patchSec);
  assert.deepEqual(r, { label: "patch", n: 3, missing: 1, p50: 2, p95: 3 });
  assert.equal(between(1, 4), 3);
  assert.equal(between(undefined, 4), undefined);
  assert.equal(between(1, undefined), undefined);
});

Deno.test("pressurePlan puts usage just above the scale-up point, in pieces of at most 900 MiB", () => {
  const MiB = 1024 * 1024;
  // 4 GiB VM, 600 MiB in use, target 0.75: 3072 + 300 − 600 = 2772 MiB in 4 queries.
  assert.deepEqual(pressurePlan(4 * GiB, 600 * MiB, 0.75, 300), { parallel: 4, mib: 693 });
  // Already above the point: the floor of 128 MiB still makes a step.
  assert.deepEqual(pressurePlan(GiB, 2 * GiB, 0.75, 0), { parallel: 1, mib: 128 });
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 64 }),
    fc.integer({ min: 0, max: 8 * 1024 }),
    fc.double({ min: 0.1, max: 0.99, noNaN: true }),
    fc.integer({ min: 0, max: 2048 }),
    (slots, usedMib, frac, over) => {
      const p = pressurePlan(slots * GiB, usedMib * MiB, frac, over);
      const want = Math.max(
        128,
        Math.round((frac * slots * GiB + over * MiB - usedMib * MiB) / MiB),
      );
      return p.mib <= 900 && p.parallel >= 1 && p.mib * p.parallel >= want &&
        (p.parallel - 1) * 900 < want;
    },
  ));
});
