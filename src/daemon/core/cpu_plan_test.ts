/**
 * Tests of neonvmd's CPU planning.
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { parseCpuList, planCpuChanges, targetOnlineCpus } from "./cpu_plan.ts";

Deno.test("parseCpuList reads sysfs ranges", () => {
  assert.deepEqual(parseCpuList("0-3,5\n"), [0, 1, 2, 3, 5]);
  assert.deepEqual(parseCpuList("0"), [0]);
  assert.deepEqual(parseCpuList("\n"), []);
  assert.throws(() => parseCpuList("a-b"), RangeError);
  assert.throws(() => parseCpuList("3-1"), RangeError);
});

Deno.test("planCpuChanges offlines highest first, onlines lowest first, never CPU 0", () => {
  assert.deepEqual(planCpuChanges([0, 1, 2, 3], [], 2), [
    { cpu: 3, online: false },
    { cpu: 2, online: false },
  ]);
  assert.deepEqual(planCpuChanges([0], [3, 1, 2], 3), [
    { cpu: 1, online: true },
    { cpu: 2, online: true },
  ]);
  assert.deepEqual(planCpuChanges([0, 1], [], 0), [{ cpu: 1, online: false }]);
  assert.deepEqual(planCpuChanges([0, 2], [1, 3], 2), []);
  assert.equal(targetOnlineCpus(1500), 2);
  assert.equal(targetOnlineCpus(0), 1);
});

Deno.test("property: applying the plan reaches the target when enough CPUs exist", () => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 16 }),
    fc.uniqueArray(fc.integer({ min: 1, max: 15 }), { maxLength: 15 }),
    fc.integer({ min: 0, max: 20000 }),
    (n, onlineExtra, milli) => {
      const all = Array.from({ length: n }, (_, i) => i);
      const online = [0, ...onlineExtra.filter((c) => c < n)];
      const offline = all.filter((c) => !online.includes(c));
      const plan = planCpuChanges(online, offline, targetOnlineCpus(milli));
      const after = new Set(online);
      for (const ch of plan) {
        assert.notEqual(ch.cpu, 0);
        if (ch.online) after.add(ch.cpu);
        else after.delete(ch.cpu);
      }
      assert.equal(after.size, Math.min(n, targetOnlineCpus(milli)));
      assert.ok(after.has(0));
    },
  ));
});
