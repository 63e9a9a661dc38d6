/** Tests of the NeonVM patch operations. */
import assert from "node:assert/strict";
import { GiB } from "../../api/quantity.ts";
import { InvariantError } from "../../lib/errors.ts";
import { neonvmPatchOps } from "./neonvm.ts";

Deno.test("patch sets cpus.use, memorySlots.use and targetRevision", () => {
  const ops = neonvmPatchOps(
    { vCPUs: 750, mem: 3 * GiB },
    GiB,
    { value: 4, flags: 1 },
    Date.UTC(2026, 0, 2, 3, 4, 5, 678),
  );
  assert.deepEqual(ops, [
    { op: "replace", path: "/spec/guest/cpus/use", value: "750m" },
    { op: "replace", path: "/spec/guest/memorySlots/use", value: 3 },
    {
      op: "add",
      path: "/spec/targetRevision",
      value: { revision: { value: 4, flags: 1 }, updatedAt: "2026-01-02T03:04:05Z" },
    },
  ]);
  assert.equal(
    neonvmPatchOps({ vCPUs: 2000, mem: GiB }, GiB, { value: 1, flags: 0 }, 0)[0]!.value,
    2,
  );
  assert.throws(
    () => neonvmPatchOps({ vCPUs: 250, mem: 1.5 * GiB }, GiB, { value: 1, flags: 0 }, 0),
    InvariantError,
  );
});
