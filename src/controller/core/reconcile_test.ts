import assert from "node:assert/strict";
import { FakeClock } from "../../lib/clock.ts";
import { GiB, MiB } from "../../api/quantity.ts";
import type { VirtualMachine, VirtualMachineStatus } from "../../api/virtualmachine.ts";
import { podFixture, SETTINGS, vmFixture } from "./_fixtures_test.ts";
import {
  type Action,
  failureStatus,
  type GuestObservation,
  needsGuestProbe,
  type Observations,
  planCpu,
  reconcileVm,
  shouldReconcileOnUpdate,
} from "./reconcile.ts";
import type { PodView } from "./runner_pod.ts";

const T0 = Date.UTC(2026, 10, 27, 12, 0, 0);
const T0_TEXT = "2026-11-27T12:00:00Z";

function obs(o: Partial<Observations> = {}): Observations {
  return { newPodSuffix: "abcde", ...o };
}

function statusOf(actions: Action[]): VirtualMachineStatus | undefined {
  const a = actions.find((x) => x.type === "updateStatus");
  return a?.type === "updateStatus" ? a.status : undefined;
}

function withStatus(vm: VirtualMachine, status: VirtualMachineStatus): VirtualMachine {
  return { ...vm, status };
}

Deno.test("reconcile: finalizer first, then the default CPU scaling mode", () => {
  const noFinalizer = vmFixture({ metadata: { finalizers: [] } });
  assert.deepEqual(reconcileVm(noFinalizer, obs(), T0, SETTINGS), {
    actions: [{ type: "addFinalizer" }],
    requeueAfterMs: 0,
  });
  const noMode = vmFixture({ spec: { cpuScalingMode: undefined } });
  assert.deepEqual(reconcileVm(noMode, obs(), T0, SETTINGS), {
    actions: [{ type: "setCpuScalingMode", mode: "QmpScaling" }],
    requeueAfterMs: 0,
  });
});

Deno.test("reconcile: lifecycle scenario from creation to Running on a fake clock", () => {
  const clock = new FakeClock(T0);
  let vm = vmFixture();
  // Round 1: no status -> Pending with Available=Unknown.
  let d = reconcileVm(vm, obs(), clock.now(), SETTINGS);
  const s1: VirtualMachineStatus = {
    restartCount: 0,
    conditions: [{
      type: "Available",
      status: "Unknown",
      reason: "Reconciling",
      message: "Starting reconciliation",
      lastTransitionTime: T0_TEXT,
    }],
    phase: "Pending",
  };
  assert.deepEqual(d, { actions: [{ type: "updateStatus", status: s1 }], requeueAfterMs: 0 });
  vm = withStatus(vm, s1);

  // Round 2: the pod name is persisted before any pod exists.
  d = reconcileVm(vm, obs(), clock.now(), SETTINGS);
  const s2 = { ...s1, podName: "vm1-abcde" };
  assert.deepEqual(d, { actions: [{ type: "updateStatus", status: s2 }], requeueAfterMs: 0 });
  vm = withStatus(vm, s2);

  // Round 3: create the pod (exactly once), with an Event.
  d = reconcileVm(vm, obs(), clock.now(), SETTINGS);
  assert.deepEqual(d, {
    actions: [
      { type: "createPod", podName: "vm1-abcde", mode: "QmpScaling" },
      {
        type: "event",
        eventType: "Normal",
        reason: "Created",
        message: "Created runner pod vm1-abcde",
      },
    ],
    requeueAfterMs: 15_000,
  });

  // Round 4: pod exists but the runner is not ready: nothing to do.
  d = reconcileVm(vm, obs({ pod: podFixture("vm1-abcde", "NotReady") }), clock.now(), SETTINGS);
  assert.deepEqual(d, { actions: [], requeueAfterMs: 15_000 });

  // Round 5: the runner is ready -> Running, Available=True, podIP and node recorded.
  clock.advance(7_000);
  d = reconcileVm(vm, obs({ pod: podFixture("vm1-abcde", "Running") }), clock.now(), SETTINGS);
  const s5: VirtualMachineStatus = {
    ...s2,
    phase: "Running",
    podIP: "10.0.0.5",
    node: "node-1",
    conditions: [{
      type: "Available",
      status: "True",
      reason: "Reconciling",
      message: "Pod (vm1-abcde) for VirtualMachine (vm1) created successfully",
      lastTransitionTime: "2026-11-27T12:00:07Z",
    }],
  };
  assert.deepEqual(d, {
    actions: [
      { type: "updateStatus", status: s5 },
      {
        type: "event",
        eventType: "Normal",
        reason: "Running",
        message: "Runner pod vm1-abcde is running on node-1",
      },
    ],
    requeueAfterMs: 0,
  });
  vm = withStatus(vm, s5);

  // Round 6: the guest is probed and already has the right size: status cpus/memory only.
  const pod = podFixture("vm1-abcde", "Running");
  assert.equal(needsGuestProbe(vm, pod, clock.now()), true);
  const guest: GuestObservation = {
    cgroupMilliCpu: 250,
    pluggedCpus: 1,
    memoryBytes: GiB,
    virtioMemRequestedBytes: 0,
  };
  d = reconcileVm(vm, obs({ pod, guest: { ok: true, guest } }), clock.now(), SETTINGS);
  const s6 = { ...s5, cpus: 250, memorySize: GiB };
  assert.deepEqual(d, { actions: [{ type: "updateStatus", status: s6 }], requeueAfterMs: 15_000 });
  vm = withStatus(vm, s6);
  assert.equal(s6.conditions?.length, 1, "a healthy VM has exactly one condition");

  // Round 7: steady state: nothing to do.
  d = reconcileVm(vm, obs({ pod, guest: { ok: true, guest } }), clock.now(), SETTINGS);
  assert.deepEqual(d, { actions: [], requeueAfterMs: 15_000 });
});

function runningVm(
  guest: Record<string, unknown> = {},
  status: Record<string, unknown> = {},
) {
  return vmFixture({
    guest,
    status: {
      phase: "Running",
      podName: "vm1-abcde",
      podIP: "10.0.0.5",
      node: "node-1",
      restartCount: 0,
      cpus: "250m",
      memorySize: "1Gi",
      conditions: [{
        type: "Available",
        status: "True",
        reason: "Reconciling",
        message: "Pod (vm1-abcde) for VirtualMachine (vm1) created successfully",
        lastTransitionTime: T0_TEXT,
      }],
      ...status,
    },
  });
}

const runningPodFor = (vm: VirtualMachine, extra: Partial<PodView> = {}) => {
  const g = vm.spec.guest;
  return podFixture("vm1-abcde", "Running", {
    annotations: {
      "kubectl.kubernetes.io/default-container": "neonvm-runner",
      "vm.neon.tech/usage": JSON.stringify({
        cpu: g.cpus.use % 1000 === 0 ? String(g.cpus.use / 1000) : `${g.cpus.use}m`,
        memory: `${g.memorySlots.use}Gi`,
      }),
      "vm.neon.tech/resources": JSON.stringify({
        cpus: {
          min: "250m",
          max: 1,
          use: g.cpus.use % 1000 === 0 ? g.cpus.use / 1000 : `${g.cpus.use}m`,
        },
        memorySlots: g.memorySlots,
        memorySlotSize: "1Gi",
      }),
    },
    ...extra,
  });
};

Deno.test("reconcile: scale 0.25 CPU / 1 slot to 1 CPU / 4 slots, QMP mode, until done", () => {
  const vm0 = runningVm({
    cpus: { min: "250m", max: 1, use: 1 },
    memorySlots: { min: 1, max: 4, use: 4 },
  });
  const pod = runningPodFor(vm0, { runnerRequests: { milliCpu: 350, memBytes: GiB + 256 * MiB } });
  let guest: GuestObservation = {
    cgroupMilliCpu: 250,
    pluggedCpus: 1,
    memoryBytes: GiB,
    virtioMemRequestedBytes: 0,
  };
  // Round 1: Running -> Scaling; the pod is resized, runner CPU changed, virtio-mem resized.
  let d = reconcileVm(vm0, obs({ pod, guest: { ok: true, guest } }), T0, SETTINGS);
  const s1 = { ...vm0.status!, phase: "Scaling" as const, cpus: 250, memorySize: GiB };
  assert.deepEqual(d, {
    actions: [
      {
        type: "resizePod",
        podName: "vm1-abcde",
        requests: { milliCpu: 1100, memBytes: 4 * GiB + 256 * MiB },
      },
      { type: "runnerCpuChange", milliCpu: 1000 },
      { type: "setVirtioMemSize", bytes: 3 * GiB },
      { type: "updateStatus", status: s1 },
      {
        type: "event",
        eventType: "Normal",
        reason: "Scaling",
        message: "Scaling from cpus 250m, memory 1Gi to cpus 1, memory 4Gi",
      },
    ],
    requeueAfterMs: 1_000,
  });
  const vm1 = { ...vm0, status: s1 };
  const resized = { ...pod, runnerRequests: { milliCpu: 1100, memBytes: 4 * GiB + 256 * MiB } };
  // Round 2: the guest is still plugging memory: keep waiting, no new QMP writes.
  guest = {
    cgroupMilliCpu: 1000,
    pluggedCpus: 1,
    memoryBytes: 2 * GiB,
    virtioMemRequestedBytes: 3 * GiB,
  };
  d = reconcileVm(vm1, obs({ pod: resized, guest: { ok: true, guest } }), T0 + 1000, SETTINGS);
  assert.deepEqual(d, {
    actions: [{ type: "updateStatus", status: { ...s1, cpus: 1000, memorySize: 2 * GiB } }],
    requeueAfterMs: 1_000,
  });
  // Round 3: done -> Running, status reports what the guest has.
  guest = { ...guest, memoryBytes: 4 * GiB };
  d = reconcileVm(
    { ...vm1, status: { ...s1, cpus: 1000, memorySize: 2 * GiB } },
    obs({ pod: resized, guest: { ok: true, guest } }),
    T0 + 2000,
    SETTINGS,
  );
  assert.deepEqual(d, {
    actions: [
      {
        type: "updateStatus",
        status: { ...s1, phase: "Running", cpus: 1000, memorySize: 4 * GiB },
      },
      {
        type: "event",
        eventType: "Normal",
        reason: "Scaled",
        message: "Scaled to cpus 1, memory 4Gi",
      },
    ],
    requeueAfterMs: 15_000,
  });
});

Deno.test("planCpu: QMP plugs/unplugs one vCPU per round, Sysfs only changes the runner", () => {
  const g = (cgroupMilliCpu: number, pluggedCpus: number) => ({
    cgroupMilliCpu,
    pluggedCpus,
    memoryBytes: 0,
  });
  assert.deepEqual(planCpu(2500, "QmpScaling", g(1000, 1)), {
    actions: [{ type: "plugCpu" }],
    done: false,
  });
  assert.deepEqual(planCpu(1000, "QmpScaling", g(3000, 3)), {
    actions: [{ type: "unplugCpu" }],
    done: false,
  });
  assert.deepEqual(planCpu(2500, "QmpScaling", g(3000, 3)), {
    actions: [{ type: "runnerCpuChange", milliCpu: 2500 }],
    done: false,
  });
  assert.deepEqual(planCpu(2500, "QmpScaling", g(2500, 3)), { actions: [], done: true });
  assert.deepEqual(planCpu(2000, "SysfsScaling", g(1000, 4)), {
    actions: [{ type: "runnerCpuChange", milliCpu: 2000 }],
    done: false,
  });
  assert.deepEqual(planCpu(2000, "SysfsScaling", g(2000, 4)), { actions: [], done: true });
});

Deno.test("reconcile: runner dies -> Failed + Degraded, restart once, Degraded cleared when healthy", () => {
  const vm = runningVm({}, { cpus: "250m", memorySize: "1Gi" });
  const failedPod = podFixture("vm1-abcde", "Failed");
  let d = reconcileVm(vm, obs({ pod: failedPod }), T0 + 60_000, SETTINGS);
  const failedText = "Pod (vm1-abcde) for VirtualMachine (vm1) failed";
  const s1 = statusOf(d.actions)!;
  assert.equal(s1.phase, "Failed");
  assert.deepEqual(s1.conditions?.map((c) => [c.type, c.status, c.message]), [
    ["Available", "False", failedText],
    ["Degraded", "True", failedText],
  ]);
  assert.deepEqual(d.actions.at(-1), {
    type: "event",
    eventType: "Warning",
    reason: "Failed",
    message: failedText,
  });
  // Next round: delete the pod and drop its owner references first.
  const vmFailed = { ...vm, status: s1 };
  d = reconcileVm(vmFailed, obs({ pod: failedPod }), T0 + 61_000, SETTINGS);
  assert.deepEqual(d, {
    actions: [
      { type: "deletePod", podName: "vm1-abcde" },
      { type: "removePodOwnerReferences", podName: "vm1-abcde" },
    ],
    requeueAfterMs: 1_000,
  });
  // Next round: pod terminating without owners: restart once (restartCount 1, pod fields cleared).
  const terminating = { ...failedPod, ownerReferenceCount: 0, deletionTimestampMs: T0 + 61_000 };
  d = reconcileVm(vmFailed, obs({ pod: terminating }), T0 + 62_000, SETTINGS);
  const s3 = statusOf(d.actions)!;
  assert.equal(s3.phase, "Pending");
  assert.equal(s3.restartCount, 1);
  assert.equal(s3.podName, undefined);
  assert.equal(s3.cpus, undefined);
  assert.deepEqual(d.actions.map((a) => a.type), ["updateStatus", "event"]);
  // The new pod runs: Available=True; the probe is healthy: Degraded is removed.
  const vmRunning = {
    ...vm,
    status: { ...s3, phase: "Running" as const, podName: "vm1-fghij" },
  };
  const pod2 = { ...runningPodFor(vm), name: "vm1-fghij" };
  d = reconcileVm(
    vmRunning,
    obs({
      pod: pod2,
      guest: {
        ok: true,
        guest: {
          cgroupMilliCpu: 250,
          pluggedCpus: 1,
          memoryBytes: GiB,
          virtioMemRequestedBytes: 0,
        },
      },
    }),
    T0 + 70_000,
    SETTINGS,
  );
  const s4 = statusOf(d.actions)!;
  assert.deepEqual(s4.conditions?.map((c) => c.type), ["Available"]);
  assert.deepEqual(d.actions.at(-1), {
    type: "event",
    eventType: "Normal",
    reason: "Recovered",
    message: "VirtualMachine is healthy again",
  });
});

Deno.test("reconcile: restartPolicy Never stays terminal; OnFailure restarts only on failure", () => {
  for (
    const [policy, phase, restarts] of [
      ["Never", "Failed", false],
      ["Never", "Succeeded", false],
      ["OnFailure", "Succeeded", false],
      ["OnFailure", "Failed", true],
      ["Always", "Succeeded", true],
    ] as const
  ) {
    const vm = runningVm({}, { phase });
    const vm2 = { ...vm, spec: { ...vm.spec, restartPolicy: policy } };
    const d = reconcileVm(vm2, obs(), T0, SETTINGS);
    assert.equal(statusOf(d.actions)?.phase === "Pending", restarts, `${policy}/${phase}`);
    assert.ok(!d.actions.some((a) => a.type === "createPod"));
  }
});

Deno.test("reconcile: a failed probe sets Degraded once with an Event, never throws", () => {
  const vm = runningVm();
  const pod = runningPodFor(vm);
  const d = reconcileVm(
    vm,
    obs({
      pod,
      guest: { ok: false, reason: "QmpFailed", message: "Cannot query QMP: connection refused" },
    }),
    T0,
    SETTINGS,
  );
  assert.equal(d.requeueAfterMs, 5_000);
  const s = statusOf(d.actions)!;
  assert.deepEqual(s.conditions?.find((c) => c.type === "Degraded"), {
    type: "Degraded",
    status: "True",
    reason: "QmpFailed",
    message: "Cannot query QMP: connection refused",
    lastTransitionTime: T0_TEXT,
  });
  assert.deepEqual(d.actions.at(-1), {
    type: "event",
    eventType: "Warning",
    reason: "QmpFailed",
    message: "Cannot query QMP: connection refused",
  });
  // Already degraded: no second event.
  const d2 = reconcileVm(
    { ...vm, status: s },
    obs({
      pod,
      guest: { ok: false, reason: "QmpFailed", message: "Cannot query QMP: connection refused" },
    }),
    T0 + 5000,
    SETTINGS,
  );
  assert.deepEqual(d2.actions, []);
  // failureStatus (used by io when an action fails) sets the same condition.
  const fs = failureStatus(vm.status, { reason: "QmpFailed", message: "x" }, T0);
  assert.equal(fs.conditions?.find((c) => c.type === "Degraded")?.status, "True");
});

Deno.test("reconcile: pod missing while Running -> Failed with an Event", () => {
  const vm = runningVm();
  const d = reconcileVm(vm, obs(), T0, SETTINGS);
  const s = statusOf(d.actions)!;
  assert.equal(s.phase, "Failed");
  assert.deepEqual(d.actions.at(-1), {
    type: "event",
    eventType: "Warning",
    reason: "PodNotFound",
    message: "Pod (vm1-abcde) for VirtualMachine (vm1) not found",
  });
});

Deno.test("reconcile: deletion deletes the pod and releases the finalizer", () => {
  const vm = runningVm();
  const deleting = { ...vm, metadata: { ...vm.metadata, deletionTimestamp: T0_TEXT } };
  assert.deepEqual(reconcileVm(deleting, obs({ pod: runningPodFor(vm) }), T0, SETTINGS), {
    actions: [{ type: "deletePod", podName: "vm1-abcde" }, { type: "removeFinalizer" }],
    requeueAfterMs: undefined,
  });
  const gone = { ...deleting, metadata: { ...deleting.metadata, finalizers: [] } };
  assert.deepEqual(reconcileVm(gone, obs(), T0, SETTINGS), {
    actions: [],
    requeueAfterMs: undefined,
  });
});

Deno.test("reconcile: label/annotation sync patches the pod; revision copied when Running", () => {
  const vm = runningVm({}, {});
  const withRev = {
    ...vm,
    metadata: {
      ...vm.metadata,
      annotations: {
        "internal.autoscaling.neon.tech/resources-approved": '{"vCPUs":"250m","mem":"1Gi"}',
      },
    },
    spec: { ...vm.spec, targetRevision: { revision: { value: 3, flags: 1 }, updatedAt: T0_TEXT } },
  };
  const pod = runningPodFor(vm, {
    labels: { ...runningPodFor(vm).labels, stale: "x" },
  });
  const d = reconcileVm(
    withRev,
    obs({
      pod,
      guest: {
        ok: true,
        guest: {
          cgroupMilliCpu: 250,
          pluggedCpus: 1,
          memoryBytes: GiB,
          virtioMemRequestedBytes: 0,
        },
      },
    }),
    T0 + 1000,
    SETTINGS,
  );
  assert.deepEqual(d.actions[0], {
    type: "patchPodMetadata",
    podName: "vm1-abcde",
    ops: [
      { op: "remove", path: "/metadata/labels/stale" },
      {
        op: "add",
        path: "/metadata/annotations/internal.autoscaling.neon.tech~1resources-approved",
        value: '{"vCPUs":"250m","mem":"1Gi"}',
      },
    ],
  });
  assert.deepEqual(statusOf(d.actions)?.currentRevision, {
    revision: { value: 3, flags: 1 },
    updatedAt: "2026-11-27T12:00:01Z",
  });
});

Deno.test("shouldReconcileOnUpdate: spec/metadata changes yes, status-only writes no", () => {
  const a = vmFixture();
  assert.equal(shouldReconcileOnUpdate(a, { ...a, status: { restartCount: 3 } }), false);
  assert.equal(
    shouldReconcileOnUpdate(a, { ...a, metadata: { ...a.metadata, generation: 2 } }),
    true,
  );
  assert.equal(
    shouldReconcileOnUpdate(a, { ...a, metadata: { ...a.metadata, annotations: { x: "1" } } }),
    true,
  );
});

Deno.test("reconcile: repeated failures restart with backoff (first restart at once)", () => {
  const failedAt = "2026-11-27T12:00:00Z";
  const vm = runningVm({}, {
    phase: "Failed",
    restartCount: 2,
    conditions: [{
      type: "Available",
      status: "False",
      reason: "Reconciling",
      message: "failed",
      lastTransitionTime: failedAt,
    }],
  });
  // restartCount 2 -> 10 s after the failure.
  assert.deepEqual(reconcileVm(vm, obs(), T0 + 4_000, SETTINGS), {
    actions: [],
    requeueAfterMs: 6_000,
  });
  const d = reconcileVm(vm, obs(), T0 + 10_000, SETTINGS);
  assert.equal(statusOf(d.actions)?.restartCount, 3);
  assert.equal(statusOf(d.actions)?.phase, "Pending");
});
