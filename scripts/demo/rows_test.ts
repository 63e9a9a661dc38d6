import assert from "node:assert/strict";
import { GiB } from "../../src/api/quantity.ts";
import { VirtualMachineSchema } from "../../src/api/virtualmachine.ts";
import { NodeSchema, PodSchema } from "../../src/lib/k8s/core_types.ts";
import { nodeRows, vmRows } from "./rows.ts";

const vm = VirtualMachineSchema.parse({
  apiVersion: "vm.neon.tech/v1",
  kind: "VirtualMachine",
  metadata: {
    name: "demo",
    namespace: "default",
    annotations: { "internal.autoscaling.neon.tech/resources-approved": '{"vCPUs":1,"mem":"4Gi"}' },
  },
  spec: {
    guest: {
      cpus: { min: "250m", max: 2, use: "500m" },
      memorySlots: { min: 1, max: 8, use: 2 },
      memorySlotSize: "1Gi",
      rootDisk: { image: "x" },
    },
  },
  status: { phase: "Running", node: "n1", podName: "demo-abc", cpus: "500m", memorySize: "2Gi" },
});

Deno.test("VM rows carry use, guest and approved amounts", () => {
  const [row] = vmRows([vm]);
  assert.deepEqual(row, {
    vm: "default/demo",
    phase: "Running",
    node: "n1",
    cpuUseMilli: 500,
    cpuStatusMilli: 500,
    cpuApprovedMilli: 1000,
    memUseBytes: 2 * GiB,
    memStatusBytes: 2 * GiB,
    memApprovedBytes: 4 * GiB,
  });
});

Deno.test("node rows count VM pods by approval and other pods by requests, skipping finished pods", () => {
  const pods = [
    {
      metadata: { name: "demo-abc", namespace: "default" },
      spec: { nodeName: "n1", containers: [{ name: "r" }] },
    },
    {
      metadata: { name: "web", namespace: "default" },
      spec: {
        nodeName: "n1",
        containers: [{ name: "c", resources: { requests: { cpu: "100m", memory: "256Mi" } } }],
      },
    },
    {
      metadata: { name: "done", namespace: "default" },
      spec: { nodeName: "n1", containers: [{ name: "c", resources: { requests: { cpu: "1" } } }] },
      status: { phase: "Succeeded" },
    },
  ].map((p) => PodSchema.parse(p));
  const nodes = [
    NodeSchema.parse({
      metadata: { name: "n1" },
      status: { allocatable: { cpu: "2", memory: "8Gi" } },
    }),
  ];
  assert.deepEqual(nodeRows(nodes, pods, [vm]), [{
    node: "n1",
    cpuReservedMilli: 1100,
    cpuTotalMilli: 2000,
    memReservedBytes: 4 * GiB + 256 * 1024 * 1024,
    memTotalBytes: 8 * GiB,
  }]);
});
