import assert from "node:assert/strict";
import { buildRunnerPod, type PodView, runnerStatus } from "./runner_pod.ts";
import { RUNNER, vmFixture } from "./_fixtures_test.ts";
import { podMetadataPatch } from "./pod_metadata.ts";

const ARGS = { vmSpec: "SPEC", vmStatus: "STATUS" };

Deno.test("runner pod: metadata, owner, command, resources, probe, affinity", () => {
  const vm = vmFixture({
    metadata: {
      annotations: {
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
        "autoscaling.neon.tech/bounds": "x",
      },
    },
    spec: { schedulerName: "autoscale-scheduler", targetArchitecture: "amd64" },
  });
  const pod = buildRunnerPod(vm, "vm1-abcde", ARGS, RUNNER, "QmpScaling");
  assert.deepEqual(pod.metadata.labels, {
    "autoscaling.neon.tech/enabled": "true",
    "app.kubernetes.io/name": "NeonVM",
    "vm.neon.tech/name": "vm1",
  });
  assert.deepEqual(pod.metadata.annotations, {
    "autoscaling.neon.tech/bounds": "x",
    "kubectl.kubernetes.io/default-container": "neonvm-runner",
    "vm.neon.tech/usage": '{"cpu":"250m","memory":"1Gi"}',
    "vm.neon.tech/resources":
      '{"cpus":{"min":"250m","max":1,"use":"250m"},"memorySlots":{"min":1,"max":4,"use":1},"memorySlotSize":"1Gi"}',
  });
  assert.deepEqual(pod.metadata.ownerReferences, [{
    apiVersion: "vm.neon.tech/v1",
    kind: "VirtualMachine",
    name: "vm1",
    uid: "uid-1",
    controller: true,
    blockOwnerDeletion: true,
  }]);
  assert.equal(pod.spec.restartPolicy, "Never");
  assert.equal(pod.spec.schedulerName, "autoscale-scheduler");
  const c = pod.spec.containers[0]!;
  assert.deepEqual(c.command, [
    "deno",
    "run",
    "--cached-only",
    "-A",
    "/app/src/runner/main.ts",
    "-skip-cgroup-management",
    "-qemu-disk-cache-settings",
    "cache=none",
    "-memhp-auto-movable-ratio",
    "301",
    "-vmspec",
    "SPEC",
    "-vmstatus",
    "STATUS",
    "-cpu-scaling-mode",
    "QmpScaling",
  ]);
  assert.deepEqual(c.resources, {
    requests: { cpu: "350m", memory: "1280Mi" },
    limits: { cpu: "1100m", memory: "4352Mi" },
  });
  assert.deepEqual(c.readinessProbe, {
    httpGet: { path: "/ready", port: 25183 },
    initialDelaySeconds: 5,
    periodSeconds: 5,
    failureThreshold: 3,
  });
  assert.deepEqual(
    (pod.spec.affinity as {
      nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: unknown };
    })
      .nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution,
    {
      nodeSelectorTerms: [{
        matchExpressions: [
          { key: "kubernetes.io/os", operator: "In", values: ["linux"] },
          { key: "kubernetes.io/arch", operator: "In", values: ["amd64"] },
        ],
      }],
    },
  );
  const init = (pod.spec.initContainers as { image: string; command: string[] }[])[0]!;
  assert.equal(init.image, "localhost/neonvm-ts/test-guest:dev");
  assert.match(init.command[2]!, /^mv \/disk\.qcow2 \/vm\/images\/rootdisk\.qcow2/);
  // A freshly built pod needs no metadata sync.
  assert.deepEqual(
    podMetadataPatch(pod.metadata, pod.metadata.labels, pod.metadata.annotations),
    [],
  );
});

Deno.test("runnerStatus follows the reference's rules", () => {
  const base: PodView = {
    name: "p",
    phase: "Running",
    hasContainerStatuses: true,
    runnerReady: true,
    ownerReferenceCount: 1,
  };
  assert.equal(runnerStatus(base, 0), "Running");
  assert.equal(runnerStatus({ ...base, runnerReady: false }, 0), "Pending");
  assert.equal(runnerStatus({ ...base, hasContainerStatuses: false }, 0), "Pending");
  assert.equal(runnerStatus({ ...base, phase: "" }, 0), "Pending");
  assert.equal(runnerStatus({ ...base, phase: "Failed" }, 0), "Failed");
  assert.equal(runnerStatus({ ...base, deletionTimestampMs: 0 }, 5_000), "Running");
  assert.equal(runnerStatus({ ...base, deletionTimestampMs: 0 }, 5_001), "Failed");
});

Deno.test("pod metadata sync: missing maps are added whole; multus annotations are kept", () => {
  assert.deepEqual(podMetadataPatch({}, { a: "1" }, {}), [
    { op: "add", path: "/metadata/labels", value: { a: "1" } },
  ]);
  assert.deepEqual(
    podMetadataPatch(
      { labels: { a: "1" }, annotations: { "k8s.v1.cni.cncf.io/network-status": "[]", old: "x" } },
      { a: "1" },
      { "x/y": "2" },
    ),
    [
      { op: "add", path: "/metadata/annotations/x~1y", value: "2" },
      { op: "remove", path: "/metadata/annotations/old" },
    ],
  );
});
