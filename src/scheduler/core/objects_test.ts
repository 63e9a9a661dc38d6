import assert from "node:assert/strict";
import fc from "fast-check";
import {
  encodeVmOvercommitAnnotation,
  encodeVmResourcesAnnotation,
} from "../../api/annotations.ts";
import { SchedPodSchema } from "../../api/extender.ts";
import { GiB, MiB } from "../../api/quantity.ts";
import { nodeInfoFromObject, podInfoFromObject } from "./objects.ts";

function runnerPod(annotations: Record<string, string>, owners: unknown[] = []) {
  return SchedPodSchema.parse({
    metadata: {
      name: "vm-pod",
      namespace: "ns",
      uid: "u1",
      creationTimestamp: "2026-01-02T03:04:05Z",
      labels: { "autoscaling.neon.tech/auto-migration-enabled": "true" },
      annotations,
      ownerReferences: [
        {
          apiVersion: "vm.neon.tech/v1",
          kind: "VirtualMachine",
          name: "vm",
          uid: "v1",
          controller: true,
        },
        ...owners,
      ],
    },
    spec: { nodeName: "n1", schedulerName: "autoscale-scheduler", containers: [] },
    status: { phase: "Running" },
  });
}

Deno.test("objects: annotations written by the controller's encoders parse (sizes, overcommit)", () => {
  const r = podInfoFromObject(runnerPod({
    "vm.neon.tech/resources": encodeVmResourcesAnnotation({
      cpus: { min: 250, max: 4000, use: 1500 },
      memorySlots: { min: 1, max: 8, use: 3 },
      memorySlotSize: 512 * MiB,
    }),
    "vm.neon.tech/overcommit": encodeVmOvercommitAnnotation({ cpu: 2000 }),
    "internal.autoscaling.neon.tech/resources-approved": `{"vCPUs":2,"mem":"2Gi"}`,
  }));
  assert.ok(r.ok);
  assert.deepEqual(r.value.vm, {
    vmName: "vm",
    role: "none",
    migrationAllowed: true,
    actual: { cpu: 1500, mem: 3 * 512 * MiB },
    maxSize: { cpu: 4000, mem: 8 * 512 * MiB },
    overcommitMilli: { cpu: 2000, mem: 1000 },
    podApproved: { cpu: 2000, mem: 2 * GiB },
  });
  assert.equal(r.value.createdAtMs, Date.parse("2026-01-02T03:04:05Z"));
});

Deno.test("objects: migration roles from owner references", () => {
  const mig = (controller: boolean) => ({
    apiVersion: "vm.neon.tech/v1",
    kind: "VirtualMachineMigration",
    name: "m",
    uid: "m1",
    controller,
  });
  const src = podInfoFromObject(runnerPod({}, [mig(false)]));
  assert.ok(src.ok);
  assert.equal(src.value.vm?.role, "source");
  // A target pod is controlled by the migration; the VM is a plain owner.
  const tgt = podInfoFromObject(SchedPodSchema.parse({
    metadata: {
      name: "t",
      namespace: "ns",
      ownerReferences: [
        mig(true),
        { apiVersion: "vm.neon.tech/v1", kind: "VirtualMachine", name: "vm", uid: "v1" },
      ],
    },
  }));
  assert.ok(tgt.ok);
  assert.equal(tgt.value.vm?.role, "target");
});

Deno.test("objects: plain pods sum container requests; bad annotations are typed errors", () => {
  const plain = podInfoFromObject(SchedPodSchema.parse({
    metadata: { name: "p", namespace: "ns" },
    spec: {
      containers: [
        { resources: { requests: { cpu: "250m", memory: "1Gi" }, limits: { cpu: 4 } } },
        { resources: { requests: { cpu: 1 } } },
        {},
      ],
    },
  }));
  assert.ok(plain.ok);
  assert.deepEqual(plain.value.requests, { cpu: 1250, mem: GiB });
  assert.equal(plain.value.vm, undefined);
  const bad: Record<string, string>[] = [
    { "vm.neon.tech/resources": "{not json" },
    { "vm.neon.tech/resources": `{"cpus":{}}` },
    { "vm.neon.tech/overcommit": `{"cpu":"500m"}` },
    { "internal.autoscaling.neon.tech/resources-approved": `{"vCPUs":"x","mem":1}` },
  ];
  for (const ann of bad) {
    const r = podInfoFromObject(runnerPod(ann));
    assert.ok(!r.ok, JSON.stringify(ann));
    assert.equal(r.error.name, "ParseError");
  }
});

Deno.test("objects: node totals and watermark from allocatable", () => {
  const n = nodeInfoFromObject(
    {
      metadata: { name: "n", labels: { zone: "a" } },
      status: { allocatable: { cpu: "3500m", memory: "8Gi" } },
    },
    0.9,
  );
  assert.deepEqual(n.total, { cpu: 3500, mem: 8 * GiB });
  assert.deepEqual(n.watermark, { cpu: 3150, mem: Math.floor(8 * GiB * 0.9) });
});

Deno.test("property: pod parsing never throws on arbitrary annotations", () => {
  fc.assert(
    fc.property(
      fc.dictionary(
        fc.constantFrom(
          "vm.neon.tech/resources",
          "vm.neon.tech/overcommit",
          "internal.autoscaling.neon.tech/resources-approved",
        ),
        fc.oneof(fc.string(), fc.jsonValue().map((v) => JSON.stringify(v))),
      ),
      (ann) => {
        const r = podInfoFromObject(runnerPod(ann));
        if (!r.ok) assert.equal(r.error.name, "ParseError");
      },
    ),
    { numRuns: 2000 },
  );
});
