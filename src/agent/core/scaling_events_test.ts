/** Tests of scaling-event de-duplication and whole-CU detection. */
import assert from "node:assert/strict";
import { GiB } from "../../api/quantity.ts";
import type { GoalCu } from "./goal_cu.ts";
import { hypotheticalEvent, wholeCu } from "./scaling_events.ts";

const CU = { vCPUs: 250, mem: GiB };
const goal = (n: number, cpu: number): GoalCu => ({
  goalCu: n,
  hasAllMetrics: true,
  parts: { cpu, mem: 0.5, lfc: undefined },
  wssBytes: undefined,
});

Deno.test("whole CU only when both fields are the same multiple", () => {
  assert.equal(wholeCu({ vCPUs: 500, mem: 2 * GiB }, CU), 2);
  assert.equal(wholeCu({ vCPUs: 500, mem: 3 * GiB }, CU), undefined);
  assert.equal(wholeCu({ vCPUs: 300, mem: GiB }, CU), undefined);
});

Deno.test("hypothetical events are de-duplicated within the threshold", () => {
  const using = { vCPUs: 500, mem: 2 * GiB };
  const first = hypotheticalEvent(goal(2, 2), using, CU, 0.25, 0.25, undefined);
  assert.deepEqual(first, { currentCu: 2, next: { targetCu: 2, parts: { cpu: 0.5, mem: 0.125 } } });
  // cpu moved 0.2 CU × 0.25 = 0.05 < 0.25: skipped.
  assert.equal(hypotheticalEvent(goal(2, 2.2), using, CU, 0.25, 0.25, first!.next), undefined);
  // cpu moved 1.2 CU × 0.25 = 0.3: reported.
  assert.ok(hypotheticalEvent(goal(2, 3.2), using, CU, 0.25, 0.25, first!.next));
  // target changed: reported.
  assert.ok(hypotheticalEvent(goal(3, 2), using, CU, 0.25, 0.25, first!.next));
  // Not all metrics, or usage not a whole CU: nothing.
  assert.equal(
    hypotheticalEvent({ ...goal(2, 2), hasAllMetrics: false }, using, CU, 0.25, 0.25, undefined),
    undefined,
  );
  assert.equal(
    hypotheticalEvent(goal(2, 2), { vCPUs: 300, mem: GiB }, CU, 0.25, 0.25, undefined),
    undefined,
  );
});
