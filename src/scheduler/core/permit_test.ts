import assert from "node:assert/strict";
import { GiB } from "../../api/quantity.ts";
import { node, request, testState, vmPod, vmView } from "./_fixtures.ts";
import { applyPermit, decidePermit, type PermitGrant } from "./permit.ts";
import {
  beginWrite,
  endWrite,
  setMigrationRequested,
  upsertNode,
  upsertPod,
  upsertVm,
} from "./state.ts";

function grant(o: ReturnType<typeof decidePermit>): PermitGrant {
  assert.equal(o.kind, "grant", JSON.stringify(o));
  return o as PermitGrant;
}

// Reference §4.2 example: node CPU 4000m with 3600m reserved; the pod holds 1000m and asks for
// 2000m in 250m units → 400m of room → +250m → 1250m.
function referenceExample(overcommitMilli: number) {
  const s = testState();
  upsertNode(s, node("n1", 4000, 64 * GiB));
  upsertPod(s, vmPod("other", { node: "n1", actual: { cpu: 2600, mem: GiB } }));
  upsertVm(s, vmView("other", { cpu: 2600, mem: GiB }));
  const oc = { cpu: overcommitMilli, mem: 1000 };
  upsertPod(s, vmPod("vm", { node: "n1", actual: { cpu: 1000, mem: GiB }, overcommit: oc }));
  upsertVm(s, vmView("vm", { cpu: 1000, mem: GiB }));
  // Make the node exactly 3600m reserved regardless of the overcommit of "vm".
  const reserved = s.nodes.get("n1")!.sums.reserved.cpu;
  upsertVm(s, vmView("other", { cpu: 2600 + (3600 - reserved), mem: GiB }));
  assert.equal(s.nodes.get("n1")!.sums.reserved.cpu, 3600);
  return s;
}

Deno.test("permit: reference example grants 1250m of 2000m (no overcommit)", () => {
  const s = referenceExample(1000);
  const g = grant(decidePermit(s, request("vm", { cpu: 2000, mem: GiB }, { cpu: 1000, mem: GiB })));
  assert.deepEqual(g.permit, { cpu: 1250, mem: GiB });
  assert.deepEqual(g.decision.denied, { cpu: 750, mem: 0 });
  assert.equal(g.mustPersist, true);
  assert.equal(g.migrate, false);
  applyPermit(s, g);
  assert.equal(s.nodes.get("n1")!.sums.reserved.cpu, 3850);
  assert.equal(s.nodes.get("n1")!.sums.capacityPressure.cpu, 750);
});

Deno.test("permit: overcommit 2 turns 400m of room into 800m of increase", () => {
  const s = referenceExample(2000);
  const g = grant(decidePermit(s, request("vm", { cpu: 2000, mem: GiB }, { cpu: 1000, mem: GiB })));
  assert.deepEqual(g.permit, { cpu: 1750, mem: GiB });
  applyPermit(s, g);
  // The pod adds half of what it reserves: 1750/2 = 875 instead of 500 before.
  assert.equal(s.nodes.get("n1")!.sums.reserved.cpu, 3600 - 500 + 875);
  assert.ok(s.nodes.get("n1")!.sums.reserved.cpu <= 4000);
});

Deno.test("permit: decreases always granted, answered from memory, free room once acknowledged and persisted", () => {
  const s = testState();
  upsertNode(s, node("n1", 4000, 8 * GiB));
  upsertPod(s, vmPod("vm", { node: "n1", actual: { cpu: 1000, mem: 2 * GiB } }));
  upsertVm(s, vmView("vm", { cpu: 2000, mem: 4 * GiB }, { cpu: 1000, mem: 2 * GiB }));
  const g = grant(
    decidePermit(s, request("vm", { cpu: 1000, mem: 2 * GiB }, { cpu: 2000, mem: 4 * GiB })),
  );
  assert.deepEqual(g.permit, { cpu: 1000, mem: 2 * GiB });
  assert.equal(g.mustPersist, false);
  // The agent still holds its old permit until it gets this answer: that stays reserved.
  assert.deepEqual(g.decision.approved, { cpu: 2000, mem: 4 * GiB });
  applyPermit(s, g);
  assert.deepEqual(s.nodes.get("n1")!.sums.reserved, { cpu: 2000, mem: 4 * GiB });
  // Next request acknowledges the decrease.
  const g2 = grant(
    decidePermit(s, request("vm", { cpu: 1000, mem: 2 * GiB }, { cpu: 1000, mem: 2 * GiB })),
  );
  assert.deepEqual(g2.decision.approved, { cpu: 1000, mem: 2 * GiB });
  assert.equal(g2.mustPersist, false);
  applyPermit(s, g2);
  // Not persisted yet: the node still counts the recorded approval (safe across a crash).
  assert.deepEqual(s.nodes.get("n1")!.sums.reserved, { cpu: 2000, mem: 4 * GiB });
  upsertVm(s, vmView("vm", { cpu: 1000, mem: 2 * GiB }, { cpu: 1000, mem: 2 * GiB }));
  assert.deepEqual(s.nodes.get("n1")!.sums.reserved, { cpu: 1000, mem: 2 * GiB });
});

Deno.test("permit: an increase over a decrease still being written must be persisted", () => {
  const s = testState();
  upsertNode(s, node("n1", 4000, 8 * GiB));
  upsertPod(s, vmPod("vm", { node: "n1", actual: { cpu: 1000, mem: GiB } }));
  upsertVm(s, vmView("vm", { cpu: 2000, mem: GiB }));
  const down = grant(decidePermit(s, request("vm", { cpu: 1000, mem: GiB })));
  applyPermit(s, down);
  beginWrite(s, "default/vm", down.permit);
  const up = grant(decidePermit(s, request("vm", { cpu: 2000, mem: GiB })));
  assert.deepEqual(up.permit, { cpu: 2000, mem: GiB });
  assert.equal(up.mustPersist, true);
  endWrite(s, "default/vm", down.permit);
});

Deno.test("permit: first request without an approved annotation is persisted", () => {
  const s = testState();
  upsertNode(s, node("n1", 4000, 8 * GiB));
  upsertPod(s, vmPod("vm", { node: "n1", actual: { cpu: 1000, mem: GiB } }));
  upsertVm(s, vmView("vm", undefined, { cpu: 1000, mem: GiB }));
  const g = grant(decidePermit(s, request("vm", { cpu: 1000, mem: GiB })));
  assert.deepEqual(g.permit, { cpu: 1000, mem: GiB });
  assert.equal(g.mustPersist, true);
  assert.equal(g.increased, false);
});

Deno.test("permit: errors — not synced, unknown pod, unbound pod, non-VM pod", () => {
  const s = testState();
  s.synced = false;
  assert.deepEqual(decidePermit(s, request("vm", { cpu: 1, mem: 1 })), {
    kind: "refuse",
    status: 503,
    message: "scheduler state is not synced yet",
  });
  s.synced = true;
  assert.deepEqual(decidePermit(s, request("vm", { cpu: 1, mem: 1 })), {
    kind: "refuse",
    status: 404,
    message: "pod not found",
  });
  upsertPod(s, vmPod("vm", {}));
  assert.deepEqual(decidePermit(s, request("vm", { cpu: 1, mem: 1 })), {
    kind: "refuse",
    status: 404,
    message: "pod's node is unknown",
  });
});

Deno.test("permit: a VM chosen for migration gets no increase and migrate: {}", () => {
  const s = testState();
  upsertNode(s, node("n1", 4000, 8 * GiB));
  upsertPod(s, vmPod("vm", { node: "n1", actual: { cpu: 1000, mem: GiB }, migratable: true }));
  upsertVm(s, vmView("vm", { cpu: 1000, mem: GiB }));
  setMigrationRequested(s, "uid-default-vm", true, 0);
  const g = grant(decidePermit(s, request("vm", { cpu: 2000, mem: GiB / 2 })));
  assert.deepEqual(g.permit, { cpu: 1000, mem: GiB / 2 });
  assert.equal(g.migrate, true);
});

Deno.test("permit: memory and cpu decided independently, in scaling-unit multiples", () => {
  const s = testState();
  upsertNode(s, node("n1", 8000, 3 * GiB + GiB / 2));
  upsertPod(s, vmPod("vm", { node: "n1", actual: { cpu: 1000, mem: GiB } }));
  upsertVm(s, vmView("vm", { cpu: 1000, mem: GiB }));
  const g = grant(decidePermit(s, request("vm", { cpu: 4000, mem: 4 * GiB })));
  // mem room 2.5Gi → 2 units of 1Gi; cpu fully granted.
  assert.deepEqual(g.permit, { cpu: 4000, mem: 3 * GiB });
});
