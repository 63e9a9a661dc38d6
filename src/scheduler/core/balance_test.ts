import assert from "node:assert/strict";
import { GiB } from "../../api/quantity.ts";
import { node, testState, vmPod, vmView } from "./_fixtures.ts";
import { applyPermit, decidePermit } from "./permit.ts";
import { nodePressure, planMigrations, startMigrations } from "./balance.ts";
import { upsertMigration, upsertNode, upsertPod, upsertVm } from "./state.ts";

function fill(migratable = true) {
  const s = testState(0.5);
  upsertNode(s, node("n1", 8000, 16 * GiB, 0.5)); // watermark 4000m / 8Gi
  const vms: [string, number, number][] = [["old", 1000, 1], ["mid", 2000, 2], ["new", 2000, 3]];
  for (const [name, cpu, at] of vms) {
    upsertPod(
      s,
      vmPod(name, { node: "n1", actual: { cpu, mem: GiB }, migratable, createdAtMs: at }),
    );
    upsertVm(s, vmView(name, { cpu, mem: GiB }));
  }
  return s; // cpu reserved 5000m → logical pressure 1000m
}

Deno.test("balance: logical pressure migrates the oldest eligible VM, no more than needed", () => {
  const s = fill();
  assert.deepEqual(nodePressure(s, "n1")!.unaccounted, { cpu: 1000, mem: 0 });
  const chosen = startMigrations(s, "n1", 100);
  assert.deepEqual(chosen.map((c) => c.vmName), ["old"]);
  assert.deepEqual(nodePressure(s, "n1")!.unaccounted, { cpu: 0, mem: 0 });
  // Accounted for now: nothing more is chosen.
  assert.deepEqual(planMigrations(s, "n1"), []);
});

Deno.test("balance: capacity pressure from denied increases starts migrations too", () => {
  const s = testState(0.9);
  upsertNode(s, node("n1", 4000, 16 * GiB));
  upsertPod(
    s,
    vmPod("a", { node: "n1", actual: { cpu: 1000, mem: GiB }, migratable: true, createdAtMs: 1 }),
  );
  upsertVm(s, vmView("a", { cpu: 1000, mem: GiB }));
  upsertPod(
    s,
    vmPod("b", { node: "n1", actual: { cpu: 2500, mem: GiB }, migratable: true, createdAtMs: 2 }),
  );
  upsertVm(s, vmView("b", { cpu: 2500, mem: GiB }));
  // Reserved 3500m < watermark 3600m: no logical pressure.
  assert.deepEqual(planMigrations(s, "n1"), []);
  const g = decidePermit(s, {
    protoVersion: 7,
    pod: { namespace: "default", name: "b-pod" },
    computeUnit: { vCPUs: 250, mem: GiB },
    resources: { vCPUs: 3500, mem: GiB },
    lastPermit: null,
    metrics: null,
  });
  assert.equal(g.kind, "grant");
  if (g.kind !== "grant") return;
  assert.deepEqual(g.permit, { cpu: 3000, mem: GiB });
  applyPermit(s, g);
  // logical 4000-3600 = 400, capacity 500 → 900 to account for; "a" (oldest) covers 1000.
  assert.deepEqual(nodePressure(s, "n1")!.unaccounted, { cpu: 900, mem: 0 });
  assert.deepEqual(planMigrations(s, "n1").map((c) => c.vmName), ["a"]);
});

Deno.test("balance: skips VMs too big to help and VMs not allowed to move", () => {
  const s = testState(0.5);
  upsertNode(s, node("n1", 8000, 16 * GiB, 0.5));
  upsertPod(
    s,
    vmPod("huge", {
      node: "n1",
      actual: { cpu: 5000, mem: GiB },
      migratable: true,
      createdAtMs: 1,
    }),
  );
  upsertVm(s, vmView("huge", { cpu: 5000, mem: GiB }));
  upsertPod(s, vmPod("pinned", { node: "n1", actual: { cpu: 500, mem: GiB }, createdAtMs: 2 }));
  upsertVm(s, vmView("pinned", { cpu: 500, mem: GiB }));
  upsertPod(
    s,
    vmPod("small", {
      node: "n1",
      actual: { cpu: 500, mem: GiB },
      migratable: true,
      createdAtMs: 3,
    }),
  );
  upsertVm(s, vmView("small", { cpu: 500, mem: GiB }));
  assert.deepEqual(planMigrations(s, "n1").map((c) => c.vmName), ["small"]);
});

Deno.test("balance: an in-flight plugin migration accounts for pressure; a finished one frees it", () => {
  const s = fill();
  upsertMigration(s, {
    namespace: "default",
    name: "schedplugin-mid-pod",
    uid: "m1",
    vmName: "mid",
    phase: "Running",
    deleting: false,
  });
  assert.deepEqual(nodePressure(s, "n1")!.accountedFor, { cpu: 2000, mem: GiB });
  assert.deepEqual(planMigrations(s, "n1"), []);
  upsertMigration(s, {
    namespace: "default",
    name: "schedplugin-mid-pod",
    uid: "m1",
    vmName: "mid",
    phase: "Failed",
    deleting: false,
  });
  assert.deepEqual(planMigrations(s, "n1").map((c) => c.vmName), ["old"]);
});

Deno.test("balance: nothing migrates when labels forbid it", () => {
  const s = fill(false);
  assert.deepEqual(planMigrations(s, "n1"), []);
});

Deno.test("balance: a namespace filter limits which VMs may be chosen", () => {
  const s = fill();
  assert.deepEqual(planMigrations(s, "n1", (ns) => ns === "elsewhere"), []);
  assert.deepEqual(planMigrations(s, "n1", (ns) => ns === "default").map((c) => c.vmName), [
    "old",
  ]);
});
