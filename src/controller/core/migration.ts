/**
 * The VirtualMachineMigration reconcile decision (reference §5.6) as a pure function:
 * `(migration, observations, nowMs, settings) -> actions + requeue`. io observes the VM, the source
 * and target runner pods and (while Running) `query-migrate` on the source; io executes the
 * actions (pods, owner references, VM and migration status, QMP migration commands).
 * Pure: no I/O, no clock, no randomness (`newPodSuffix` comes in).
 * @module
 */
import { FINALIZER } from "../../api/annotations.ts";
import { formatK8sTime } from "../../api/revision.ts";
import {
  CONDITION_AVAILABLE,
  CONDITION_DEGRADED,
  NEONVM_API_VERSION,
  setCondition,
  sortKeysDeep,
  type VirtualMachine,
  type VmPhase,
} from "../../api/virtualmachine.ts";
import type {
  MigrationInfo,
  VirtualMachineMigration,
  VirtualMachineMigrationStatus,
} from "../../api/virtualmachine_migration.ts";
import { type PatchOp, podMetadataPatch } from "./pod_metadata.ts";
import { expectedPodAnnotations, expectedPodLabels, type PodView } from "./runner_pod.ts";

/** `query-migrate` as the core needs it. */
export interface MigrateProgress {
  /** QEMU migration status (`active`, `completed`, `failed`, ...). */
  readonly status: string;
  /** Statistics in the CRD's shape. */
  readonly info: MigrationInfo;
}

/** What io observed for one migration. */
export interface MigrationObservations {
  /** The VM named by `spec.vmName` (undefined: not found). */
  readonly vm?: VirtualMachine | undefined;
  /** The VM's current runner pod (the source). */
  readonly sourcePod?: PodView | undefined;
  /** The pod named `status.targetPodName`. */
  readonly targetPod?: PodView | undefined;
  /** `query-migrate` on the source; present only while Running. */
  readonly progress?: { ok: true; value: MigrateProgress } | { ok: false; message: string };
  /** Suffix for the target pod name. */
  readonly newPodSuffix: string;
}

/** One thing io must do for a migration. */
export type MigrationAction =
  | { readonly type: "addFinalizer" }
  | { readonly type: "removeFinalizer" }
  | { readonly type: "setVmOwner" }
  | { readonly type: "updateStatus"; readonly status: VirtualMachineMigrationStatus }
  | { readonly type: "setVmPhase"; readonly phase: VmPhase }
  | {
    /** Hands the VM to the target pod: podName, podIP and node in one status write. */
    readonly type: "setVmPod";
    readonly podName: string;
    readonly podIP: string;
    readonly node: string | undefined;
  }
  | { readonly type: "createTargetPod"; readonly podName: string }
  | { readonly type: "patchPodMetadata"; readonly podName: string; readonly ops: PatchOp[] }
  | { readonly type: "addSourcePodOwner"; readonly podName: string }
  | {
    readonly type: "handOverPods";
    readonly sourcePodName: string;
    readonly targetPodName: string;
  }
  | { readonly type: "syncTargetCpus" }
  | { readonly type: "startMigration" }
  | { readonly type: "cancelMigration" }
  | { readonly type: "quitQemu"; readonly which: "source" | "target" }
  | { readonly type: "deletePod"; readonly podName: string }
  | {
    readonly type: "event";
    readonly eventType: "Normal" | "Warning";
    readonly reason: string;
    readonly message: string;
  };

/** A migration decision. */
export interface MigrationDecision {
  /** Actions in order; io stops at the first failure (except best-effort ones). */
  readonly actions: MigrationAction[];
  /** When to look again. */
  readonly requeueAfterMs: number | undefined;
}

/** Requeue while a migration progresses (reference: 1 s). */
export const MIGRATION_REQUEUE_MS = 1_000;

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(sortKeysDeep(a)) === JSON.stringify(sortKeysDeep(b));
}

/** True when the VM is the migration's controller owner. */
export function vmOwnsMigration(m: VirtualMachineMigration, vm: VirtualMachine): boolean {
  return (m.metadata.ownerReferences ?? []).some((r) =>
    r.controller === true && r.kind === "VirtualMachine" && r.apiVersion === NEONVM_API_VERSION &&
    r.uid === vm.metadata.uid
  );
}

function targetRunning(p: PodView): boolean {
  // A migration target's readiness may lag while QEMU waits for the stream: running is enough.
  return p.phase === "Running" && p.hasContainerStatuses && p.deletionTimestampMs === undefined;
}

/** Decides what to do for one migration. */
export function reconcileMigration(
  m: VirtualMachineMigration,
  obs: MigrationObservations,
  nowMs: number,
): MigrationDecision {
  const nowText = formatK8sTime(nowMs);
  const finalizers = m.metadata.finalizers ?? [];
  const vm = obs.vm;
  const vmPhase = vm?.status?.phase;
  const before: VirtualMachineMigrationStatus = m.status ?? {};

  // 1. Deletion.
  if (m.metadata.deletionTimestamp) {
    const actions: MigrationAction[] = [];
    if (finalizers.includes(FINALIZER)) {
      if (before.phase === "Running" || vmPhase === "PreMigrating") {
        actions.push({ type: "cancelMigration" });
      }
      if (vmPhase === "Migrating" || vmPhase === "PreMigrating") {
        actions.push({ type: "setVmPhase", phase: "Running" });
      }
      if (obs.targetPod !== undefined && before.phase !== "Succeeded") {
        actions.push({ type: "deletePod", podName: obs.targetPod.name });
      }
      actions.push({ type: "removeFinalizer" });
    }
    return { actions, requeueAfterMs: undefined };
  }
  if (!finalizers.includes(FINALIZER)) {
    return { actions: [{ type: "addFinalizer" }], requeueAfterMs: 0 };
  }

  let status: VirtualMachineMigrationStatus = { ...before };
  const actions: MigrationAction[] = [];
  const events: MigrationAction[] = [];
  const setCond = (type: string, st: "True" | "False" | "Unknown", reason: string, msg: string) => {
    status = {
      ...status,
      conditions: setCondition(
        status.conditions,
        { type, status: st, reason, message: msg },
        nowText,
      ),
    };
  };
  const fail = (msg: string) => {
    status = { ...status, phase: "Failed" };
    setCond(CONDITION_DEGRADED, "True", "Reconciling", msg);
    events.push({ type: "event", eventType: "Warning", reason: "MigrationFailed", message: msg });
  };
  let requeueAfterMs: number | undefined = MIGRATION_REQUEUE_MS;

  // 2. The VM must exist.
  if (vm === undefined) {
    if (status.phase !== "Failed" && status.phase !== "Succeeded") {
      fail(`VM (${m.spec.vmName}) not found`);
    }
    requeueAfterMs = undefined;
  } else if (!vmOwnsMigration(m, vm)) {
    // 3. The VM owns the migration (so deleting the VM deletes it).
    return { actions: [{ type: "setVmOwner" }], requeueAfterMs: 0 };
  } else {
    if (!status.conditions || status.conditions.length === 0) {
      setCond(CONDITION_AVAILABLE, "Unknown", "Reconciling", "Starting reconciliation");
    }
    if (status.targetPodName === undefined) {
      // Persist the target pod name first so a crash cannot create two target pods.
      status = { ...status, targetPodName: `${m.spec.vmName}-${obs.newPodSuffix}` };
      requeueAfterMs = 0;
    } else {
      const targetName = status.targetPodName;
      const target = obs.targetPod;
      const syncTarget = () => {
        if (target === undefined) return;
        const ops = podMetadataPatch(target, expectedPodLabels(vm), expectedPodAnnotations(vm));
        if (ops.length > 0) actions.push({ type: "patchPodMetadata", podName: target.name, ops });
      };
      switch (status.phase) {
        case undefined:
          if (vmPhase === "Running") {
            actions.push({ type: "setVmPhase", phase: "PreMigrating" });
            status = { ...status, phase: "Pending" };
            events.push({
              type: "event",
              eventType: "Normal",
              reason: "MigrationPending",
              message: `Preparing migration of VM ${m.spec.vmName}`,
            });
            requeueAfterMs = 0;
          }
          break;
        case "Pending": {
          if (target === undefined) {
            actions.push({ type: "createTargetPod", podName: targetName });
            events.push({
              type: "event",
              eventType: "Normal",
              reason: "TargetCreated",
              message: `Created target runner pod ${targetName}`,
            });
            break;
          }
          syncTarget();
          const source = obs.sourcePod;
          if (source !== undefined && !(source.ownerNames ?? []).includes(m.metadata.name ?? "")) {
            actions.push({ type: "addSourcePodOwner", podName: source.name });
          }
          if (target.phase === "Succeeded") {
            fail(`Target Pod (${targetName}) completed suddenly`);
            break;
          }
          if (target.phase === "Failed") {
            fail(`Target Pod (${targetName}) failed`);
            break;
          }
          if (!targetRunning(target) || target.podIP === undefined) break;
          status = {
            ...status,
            sourcePodName: vm.status?.podName,
            sourcePodIP: vm.status?.podIP,
            sourceNode: vm.status?.node,
            targetPodIP: target.podIP,
            targetNode: target.nodeName,
          };
          for (const k of ["sourcePodName", "sourcePodIP", "sourceNode", "targetNode"] as const) {
            if (status[k] === undefined) delete status[k];
          }
          if (vmPhase === "PreMigrating") {
            if (vm.spec.cpuScalingMode !== "SysfsScaling") actions.push({ type: "syncTargetCpus" });
            actions.push({ type: "startMigration" }, { type: "setVmPhase", phase: "Migrating" });
            const msg = `Migration was started to target runner (${targetName})`;
            setCond(CONDITION_AVAILABLE, "True", "Reconciling", msg);
            status = { ...status, phase: "Running" };
            events.push({
              type: "event",
              eventType: "Normal",
              reason: "MigrationStarted",
              message: msg,
            });
          }
          break;
        }
        case "Running": {
          if (target === undefined) {
            fail(`Target Pod (${targetName}) disappeared`);
            break;
          }
          syncTarget();
          const p = obs.progress;
          if (p === undefined) break;
          if (!p.ok) {
            setCond(CONDITION_DEGRADED, "True", "QmpFailed", p.message);
            break;
          }
          status = { ...status, info: p.value.info };
          if (p.value.status === "completed") {
            actions.push(
              {
                type: "setVmPod",
                podName: targetName,
                podIP: status.targetPodIP ?? target.podIP ?? "",
                // Why: writing node with podName in one status write, so no reader ever sees
                // the target pod paired with the source node (it used to follow a round later).
                node: status.targetNode ?? target.nodeName,
              },
              {
                type: "handOverPods",
                sourcePodName: status.sourcePodName ?? "",
                targetPodName: targetName,
              },
            );
            if (obs.sourcePod !== undefined && obs.sourcePod.phase === "Running") {
              actions.push({ type: "quitQemu", which: "source" });
            }
            status = { ...status, phase: "Succeeded" };
            events.push({
              type: "event",
              eventType: "Normal",
              reason: "MigrationSucceeded",
              message: `VM ${m.spec.vmName} now runs in ${targetName}`,
            });
          } else if (p.value.status === "failed" || p.value.status === "cancelled") {
            actions.push({ type: "quitQemu", which: "target" }, {
              type: "setVmPhase",
              phase: "Running",
            });
            fail(`Migration ${p.value.status}`);
          }
          break;
        }
        case "Succeeded":
          if (vmPhase === "Migrating") actions.push({ type: "setVmPhase", phase: "Running" });
          if (status.sourcePodName !== undefined) {
            if (obs.sourcePod !== undefined) {
              actions.push({ type: "deletePod", podName: status.sourcePodName });
            }
            const { sourcePodName: _n, sourcePodIP: _i, ...rest } = status;
            status = rest;
          }
          requeueAfterMs = undefined;
          break;
        case "Failed":
          if (vmPhase === "Migrating" || vmPhase === "PreMigrating") {
            actions.push({ type: "setVmPhase", phase: "Running" });
          }
          requeueAfterMs = undefined;
          break;
      }
    }
  }
  if (!sameJson(status, before)) actions.push({ type: "updateStatus", status });
  return { actions: [...actions, ...events], requeueAfterMs };
}
