import assert from "node:assert/strict";
import { GiB } from "../../api/quantity.ts";
import { DEFAULT_SCHEDULER_CONFIG } from "../../api/scheduler_config.ts";
import { node, plainPod, testState, vmPod, vmView } from "./_fixtures.ts";
import {
  filterNodes,
  prioritize,
  releaseBind,
  reserveForBind,
  scoreNode,
  usageScore,
} from "./placement.ts";
import { upsertNode, upsertPod, upsertVm } from "./state.ts";

Deno.test("filter: fits where room is left, reason names the short resource", () => {
  const s = testState();
  upsertNode(s, node("a", 4000, 8 * GiB));
  upsertNode(s, node("b", 4000, 8 * GiB));
  upsertPod(s, plainPod("x", "a", { cpu: 3500, mem: GiB }));
  const p = vmPod("vm", { actual: { cpu: 1000, mem: 2 * GiB } });
  const r = filterNodes(s, p, ["a", "b", "ghost"]);
  assert.deepEqual(r.fit, ["b"]);
  assert.equal(
    r.failed.a,
    "autoscale-scheduler: not enough resources (cpu: pod needs 1, 500m of 4 free)",
  );
  assert.equal(r.failed.ghost, "node is not known to autoscale-scheduler");
});

Deno.test("filter: pods in ignored namespaces count when placing new pods", () => {
  const s = testState(0.9, ["overprovisioning"]);
  upsertNode(s, node("a", 4000, 8 * GiB));
  upsertPod(s, plainPod("pause", "a", { cpu: 3500, mem: GiB }, "overprovisioning"));
  assert.equal(s.nodes.get("a")!.sums.reserved.cpu, 0);
  const r = filterNodes(s, plainPod("new", undefined, { cpu: 1000, mem: GiB }), ["a"]);
  assert.deepEqual(r.fit, []);
});

Deno.test("bind: re-checks the fit and records the placement; release forgets it", () => {
  const s = testState();
  upsertNode(s, node("a", 4000, 8 * GiB));
  const p1 = vmPod("v1", { actual: { cpu: 3000, mem: GiB } });
  const p2 = vmPod("v2", { actual: { cpu: 3000, mem: GiB } });
  upsertVm(s, vmView("v1", undefined, { cpu: 3000, mem: GiB }));
  upsertVm(s, vmView("v2", undefined, { cpu: 3000, mem: GiB }));
  // Both pass filter on the same snapshot…
  assert.deepEqual(filterNodes(s, p1, ["a"]).fit, ["a"]);
  assert.deepEqual(filterNodes(s, p2, ["a"]).fit, ["a"]);
  // …but only the first bind succeeds.
  assert.deepEqual(reserveForBind(s, p1, "a"), { ok: true });
  const second = reserveForBind(s, p2, "a");
  assert.equal(second.ok, false);
  assert.equal(s.nodes.get("a")!.sums.reserved.cpu, 3000);
  releaseBind(s, p1);
  assert.equal(s.nodes.get("a")!.sums.reserved.cpu, 0);
  assert.deepEqual(reserveForBind(s, p2, "a"), { ok: true });
});

Deno.test("score: peak curve, 0 when the pod does not fit, randomize within [1, s]", () => {
  const cfg = DEFAULT_SCHEDULER_CONFIG.scoring;
  assert.equal(usageScore(0, cfg), 0.5);
  assert.equal(usageScore(0.8, cfg), 1);
  assert.ok(Math.abs(usageScore(1, cfg) - 0) < 1e-9);
  assert.ok(Math.abs(usageScore(0.4, cfg) - 0.75) < 1e-9);
  const s = testState();
  upsertNode(s, node("a", 4000, 5 * GiB));
  upsertNode(s, node("b", 4000, 5 * GiB));
  upsertPod(s, plainPod("x", "a", { cpu: 2200, mem: 3 * GiB }));
  const p = plainPod("new", undefined, { cpu: 1000, mem: GiB });
  // a: cpu 3200/4000 = 0.8, mem 4/5 = 0.8 → peak → 10; b: min(cpu 0.25, mem 0.2) → 0.625 → 6
  assert.equal(scoreNode(s, "a", p, cfg, 10), 10);
  assert.equal(scoreNode(s, "b", p, cfg, 10), 6);
  const big = plainPod("big", undefined, { cpu: 3000, mem: GiB });
  assert.equal(scoreNode(s, "a", big, cfg, 10), 0);
  const r = prioritize(s, p, ["a", "b"], cfg, 10, () => 0.999);
  assert.deepEqual(r, [{ host: "a", score: 10 }, { host: "b", score: 6 }]);
  const low = prioritize(s, p, ["a"], cfg, 10, () => 0);
  assert.deepEqual(low, [{ host: "a", score: 1 }]);
});
