/** Tests of VM responsibility and VmInfo extraction (bounds and config annotations). */
import assert from "node:assert/strict";
import { GiB } from "../../api/quantity.ts";
import { type VirtualMachine, VirtualMachineSchema } from "../../api/virtualmachine.ts";
import { extractVmInfo, isResponsible, runnerKey } from "./vm_info.ts";

function vm(annotations: Record<string, string> = {}, status: Record<string, unknown> = {}) {
  return VirtualMachineSchema.parse({
    apiVersion: "vm.neon.tech/v1",
    kind: "VirtualMachine",
    metadata: {
      name: "vm1",
      namespace: "ns",
      labels: { "autoscaling.neon.tech/enabled": "true" },
      annotations,
    },
    spec: {
      schedulerName: "autoscale-scheduler",
      guest: {
        cpus: { min: "250m", max: 2, use: "500m" },
        memorySlotSize: "1Gi",
        memorySlots: { min: 1, max: 8, use: 2 },
        rootDisk: { image: "img" },
      },
    },
    status: {
      phase: "Running",
      node: "n1",
      podIP: "10.0.0.5",
      podName: "vm1-abcde",
      currentRevision: { revision: { value: 7, flags: 1 }, updatedAt: "2026-01-01T00:00:00Z" },
      ...status,
    },
  }) as VirtualMachine;
}

Deno.test("responsibility predicate follows §3.1", () => {
  assert.equal(isResponsible(vm(), "n1", "autoscale-scheduler"), true);
  assert.equal(isResponsible(vm(), "n2", "autoscale-scheduler"), false);
  assert.equal(isResponsible(vm(), "n1", "other"), false);
  assert.equal(isResponsible(vm({}, { phase: "Migrating" }), "n1", "autoscale-scheduler"), false);
  assert.equal(isResponsible(vm({}, { phase: "PreMigrating" }), "n1", "autoscale-scheduler"), true);
  assert.equal(isResponsible(vm({}, { podIP: "" }), "n1", "autoscale-scheduler"), false);
  assert.equal(isResponsible(vm({}, { phase: "Pending" }), "n1", "autoscale-scheduler"), false);
  assert.equal(runnerKey(vm()), "ns/vm1-abcde");
});

Deno.test("spec bounds, then the bounds annotation overrides them", () => {
  const plain = extractVmInfo(vm());
  assert.deepEqual(plain, {
    ok: true,
    value: {
      namespace: "ns",
      name: "vm1",
      cpu: { min: 250, max: 2000, use: 500 },
      mem: { min: GiB, max: 8 * GiB, use: 2 * GiB },
      slotSizeBytes: GiB,
      config: undefined,
      currentRevision: { value: 7, flags: 1 },
    },
  });
  const b = extractVmInfo(vm({
    "autoscaling.neon.tech/bounds":
      '{"min":{"cpu":"500m","mem":"2Gi"},"max":{"cpu":1,"mem":"4Gi"}}',
    "autoscaling.neon.tech/config": '{"enableLFCMetrics":true}',
  }));
  assert.ok(b.ok);
  assert.deepEqual(b.value.cpu, { min: 500, max: 1000, use: 500 });
  assert.deepEqual(b.value.mem, { min: 2 * GiB, max: 4 * GiB, use: 2 * GiB });
  assert.deepEqual(b.value.config, { enableLFCMetrics: true });
});

Deno.test("bad annotations are errors, not crashes", () => {
  for (
    const a of <Record<string, string>[]> [
      { "autoscaling.neon.tech/bounds": "{nope" },
      {
        "autoscaling.neon.tech/bounds": '{"min":{"cpu":0,"mem":"1Gi"},"max":{"cpu":1,"mem":"1Gi"}}',
      },
      {
        "autoscaling.neon.tech/bounds":
          '{"min":{"cpu":1,"mem":"1.5Gi"},"max":{"cpu":1,"mem":"2Gi"}}',
      },
      {
        "autoscaling.neon.tech/bounds": '{"min":{"cpu":2,"mem":"1Gi"},"max":{"cpu":1,"mem":"2Gi"}}',
      },
      { "autoscaling.neon.tech/config": "[]" },
    ]
  ) {
    const r = extractVmInfo(vm(a));
    assert.equal(r.ok, false, JSON.stringify(a));
  }
  // Unknown knobs are ignored, as Go's json.Unmarshal does for the reference agent.
  assert.equal(extractVmInfo(vm({ "autoscaling.neon.tech/config": '{"unknownKnob":1}' })).ok, true);
});
