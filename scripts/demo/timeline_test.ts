/**
 * Tests for the demo timeline: reaction times found from recorded points, conversion to render
 * samples, percentiles.
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { percentile, type Point, reactionOf, toSamples } from "./timeline.ts";

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
