import assert from "node:assert/strict";
import {
  type VirtualMachineMigration,
  VirtualMachineMigrationSchema,
} from "../../api/virtualmachine_migration.ts";
import { podFixture, RUNNER, vmFixture } from "./_fixtures_test.ts";
import { type MigrationAction, reconcileMigration } from "./migration.ts";
import { buildTargetPod } from "./runner_pod.ts";

const T0 = Date.UTC(2026, 10, 27, 12);

function migration(extra: { status?: Record<string, unknown>; owned?: boolean } = {}) {
  return VirtualMachineMigrationSchema.parse({
    apiVersion: "vm.neon.tech/v1",
    kind: "VirtualMachineMigration",
    metadata: {
      name: "mig1",
      namespace: "default",
      uid: "mig-uid",
      finalizers: ["vm.neon.tech/finalizer"],
      ownerReferences: extra.owned === false ? [] : [{
        apiVersion: "vm.neon.tech/v1",
        kind: "VirtualMachine",
        name: "vm1",
        uid: "uid-1",
        controller: true,
      }],
    },
    spec: { vmName: "vm1" },
    ...(extra.status ? { status: extra.status } : {}),
  });
}

const vmRunning = (phase = "Running") =>
  vmFixture({
    status: {
      phase,
      podName: "vm1-abcde",
      podIP: "10.0.0.5",
      node: "node-1",
      restartCount: 0,
    },
  });

const types = (a: MigrationAction[]) => a.map((x) => x.type);
const statusOf = (a: MigrationAction[]) => {
  const u = a.find((x) => x.type === "updateStatus");
  return u?.type === "updateStatus" ? u.status : undefined;
};

Deno.test("migration: owner, target name, PreMigrating, target pod, start, complete, clean up", () => {
  const vm = vmRunning();
  assert.deepEqual(
    reconcileMigration(migration({ owned: false }), { vm, newPodSuffix: "zzzzz" }, T0),
    { actions: [{ type: "setVmOwner" }], requeueAfterMs: 0 },
  );
  let m: VirtualMachineMigration = migration();
  let d = reconcileMigration(m, { vm, newPodSuffix: "zzzzz" }, T0);
  assert.deepEqual(types(d.actions), ["updateStatus"]);
  m = { ...m, status: statusOf(d.actions)! };
  assert.equal(m.status?.targetPodName, "vm1-zzzzz");

  d = reconcileMigration(m, { vm, newPodSuffix: "x" }, T0);
  assert.deepEqual(types(d.actions), ["setVmPhase", "updateStatus", "event"]);
  assert.deepEqual(d.actions[0], { type: "setVmPhase", phase: "PreMigrating" });
  m = { ...m, status: statusOf(d.actions)! };
  const pre = vmRunning("PreMigrating");

  d = reconcileMigration(m, { vm: pre, newPodSuffix: "x" }, T0);
  assert.deepEqual(d.actions[0], { type: "createTargetPod", podName: "vm1-zzzzz" });

  const source = podFixture("vm1-abcde", "Running", { ownerNames: ["vm1"] });
  const target = podFixture("vm1-zzzzz", "NotReady", { podIP: "10.0.1.9", nodeName: "node-2" });
  d = reconcileMigration(
    m,
    { vm: pre, sourcePod: source, targetPod: target, newPodSuffix: "x" },
    T0,
  );
  assert.deepEqual(types(d.actions), [
    "addSourcePodOwner",
    "syncTargetCpus",
    "startMigration",
    "setVmPhase",
    "updateStatus",
    "event",
  ]);
  const s = statusOf(d.actions)!;
  assert.equal(s.phase, "Running");
  assert.equal(s.sourcePodName, "vm1-abcde");
  assert.equal(s.targetPodIP, "10.0.1.9");
  m = { ...m, status: s };
  const migrating = vmRunning("Migrating");

  // In progress: stats stored, requeue 1 s.
  d = reconcileMigration(m, {
    vm: migrating,
    sourcePod: source,
    targetPod: target,
    progress: { ok: true, value: { status: "active", info: { status: "active", totalTimeMs: 5 } } },
    newPodSuffix: "x",
  }, T0);
  assert.deepEqual(types(d.actions), ["updateStatus"]);
  assert.equal(d.requeueAfterMs, 1000);

  // Completed: hand over the VM to the target, quit the source QEMU.
  d = reconcileMigration(m, {
    vm: migrating,
    sourcePod: source,
    targetPod: target,
    progress: { ok: true, value: { status: "completed", info: { status: "completed" } } },
    newPodSuffix: "x",
  }, T0);
  assert.deepEqual(d.actions.slice(0, 3), [
    { type: "setVmPod", podName: "vm1-zzzzz", podIP: "10.0.1.9", node: "node-2" },
    { type: "handOverPods", sourcePodName: "vm1-abcde", targetPodName: "vm1-zzzzz" },
    { type: "quitQemu", which: "source" },
  ]);
  m = { ...m, status: statusOf(d.actions)! };
  assert.equal(m.status?.phase, "Succeeded");

  // Succeeded: the source pod is deleted once and forgotten.
  d = reconcileMigration(m, { vm: vmRunning(), sourcePod: source, newPodSuffix: "x" }, T0);
  assert.deepEqual(d.actions[0], { type: "deletePod", podName: "vm1-abcde" });
  assert.equal(statusOf(d.actions)?.sourcePodName, undefined);
});

Deno.test("migration: failures put the VM back to Running", () => {
  const m = migration({
    status: { phase: "Running", targetPodName: "vm1-zzzzz", sourcePodName: "vm1-abcde" },
  });
  const d = reconcileMigration(m, {
    vm: vmRunning("Migrating"),
    targetPod: podFixture("vm1-zzzzz", "Running"),
    progress: { ok: true, value: { status: "failed", info: { status: "failed" } } },
    newPodSuffix: "x",
  }, T0);
  assert.deepEqual(types(d.actions), ["quitQemu", "setVmPhase", "updateStatus", "event"]);
  assert.equal(statusOf(d.actions)?.phase, "Failed");
  const gone = reconcileMigration(m, { vm: vmRunning("Migrating"), newPodSuffix: "x" }, T0);
  assert.equal(statusOf(gone.actions)?.phase, "Failed");
  const noVm = reconcileMigration(m, { newPodSuffix: "x" }, T0);
  assert.equal(
    statusOf(noVm.actions)?.conditions?.find((c) => c.type === "Degraded")?.message,
    "VM (vm1) not found",
  );
  // Deleting a running migration cancels it, restores the VM and removes the target pod.
  const deleting = { ...m, metadata: { ...m.metadata, deletionTimestamp: "2026-11-27T12:00:00Z" } };
  assert.deepEqual(
    reconcileMigration(deleting, {
      vm: vmRunning("Migrating"),
      targetPod: podFixture("vm1-zzzzz", "Running"),
      newPodSuffix: "x",
    }, T0).actions,
    [
      { type: "cancelMigration" },
      { type: "setVmPhase", phase: "Running" },
      { type: "deletePod", podName: "vm1-zzzzz" },
      { type: "removeFinalizer" },
    ],
  );
});

Deno.test("target pod: RECEIVE_MIGRATION, migration owns it, anti-affinity to the VM", () => {
  const pod = buildTargetPod(
    vmRunning(),
    migration(),
    "vm1-zzzzz",
    {
      vmSpec: "S",
      vmStatus: "T",
    },
    RUNNER,
    "QmpScaling",
  );
  assert.deepEqual(pod.metadata.ownerReferences.map((o) => [o.kind, o.controller]), [
    ["VirtualMachineMigration", true],
    ["VirtualMachine", false],
  ]);
  assert.deepEqual((pod.spec.containers[0]!.env as unknown[]).at(-1), {
    name: "RECEIVE_MIGRATION",
    value: "true",
  });
  assert.deepEqual(
    (pod.spec.affinity as { podAntiAffinity: unknown }).podAntiAffinity,
    {
      requiredDuringSchedulingIgnoredDuringExecution: [{
        labelSelector: { matchLabels: { "vm.neon.tech/name": "vm1" } },
        topologyKey: "kubernetes.io/hostname",
      }],
    },
  );
});
