/**
 * The VirtualMachine reconcile decision (reference §5.2, §5.4, §5.5) as a pure function:
 * `(vm, observations, nowMs, settings) -> actions + requeue`. Observations are what io read
 * before deciding (the runner pod, the guest's CPU and memory via the runner API and QMP, an
 * unresolved failure of an earlier action); actions are what io must do, in order. Scaling applies
 * one step per round (one vCPU hot-plug, one runner `/cpu_change`, one virtio-mem resize) and
 * requeues after 1 s until the guest reports the target size.
 * Pure: no I/O, no clock (`nowMs` is a parameter), no randomness (`newPodSuffix` comes in).
 * @module
 */
import { FINALIZER } from "../../api/annotations.ts";
import { formatBinarySi, formatMilliCpu } from "../../api/quantity.ts";
import { formatK8sTime, revisionEquals, revisionWithTime } from "../../api/revision.ts";
import {
  CONDITION_AVAILABLE,
  CONDITION_DEGRADED,
  type CpuScalingMode,
  setCondition,
  sortKeysDeep,
  statusAfterPodCleanup,
  type VirtualMachine,
  type VirtualMachineStatus,
  type VmPhase,
} from "../../api/virtualmachine.ts";
import { type PatchOp, podMetadataPatch } from "./pod_metadata.ts";
import {
  expectedPodAnnotations,
  expectedPodLabels,
  type PodView,
  type RunnerPodSettings,
  runnerRequests,
  type RunnerSize,
  runnerStatus,
} from "./runner_pod.ts";

/** What the guest has right now (read through the runner API and QMP). */
export interface GuestObservation {
  /** The runner's `/cpu_current` value, MilliCPU. */
  readonly cgroupMilliCpu: number;
  /** vCPUs plugged (QMP: slots with a qom-path; Sysfs: ceil of the runner's value). */
  readonly pluggedCpus: number;
  /** `query-memory-size-summary` base + plugged, bytes. */
  readonly memoryBytes: number;
  /** virtio-mem `requested-size`, bytes; undefined when the VM has no virtio-mem device. */
  readonly virtioMemRequestedBytes?: number | undefined;
}

/** Result of probing the guest. */
export type GuestProbe =
  | { readonly ok: true; readonly guest: GuestObservation }
  | { readonly ok: false; readonly reason: string; readonly message: string };

/** A failure of an earlier action that has not been resolved by a successful round since. */
export interface Failure {
  /** Condition/event reason, e.g. `QmpFailed`. */
  readonly reason: string;
  /** Human-readable message. */
  readonly message: string;
}

/** Everything io observed before asking for a decision. */
export interface Observations {
  /** The pod named `status.podName`, when it exists. */
  readonly pod?: PodView | undefined;
  /** Guest probe result; present only when {@linkcode needsGuestProbe} said so. */
  readonly guest?: GuestProbe | undefined;
  /** Unresolved failure of an earlier action. */
  readonly failure?: Failure | undefined;
  /** Random suffix for a new pod name (5 chars of `[a-z0-9]`, as generateName). */
  readonly newPodSuffix: string;
}

/** Controller settings the decision depends on. */
export interface ReconcileSettings {
  /** `--default-cpu-scaling-mode`. */
  readonly defaultCpuScalingMode: CpuScalingMode;
  /** `--at-most-one-pod`: wait for the old pod to be gone before restarting. */
  readonly atMostOnePod: boolean;
  /** Runner pod settings (for requests). */
  readonly runner: RunnerPodSettings;
}

/** One thing io must do. */
export type Action =
  | { readonly type: "addFinalizer" }
  | { readonly type: "removeFinalizer" }
  | { readonly type: "setCpuScalingMode"; readonly mode: CpuScalingMode }
  | { readonly type: "updateStatus"; readonly status: VirtualMachineStatus }
  | { readonly type: "createPod"; readonly podName: string; readonly mode: CpuScalingMode }
  | { readonly type: "deletePod"; readonly podName: string }
  | { readonly type: "removePodOwnerReferences"; readonly podName: string }
  | { readonly type: "patchPodMetadata"; readonly podName: string; readonly ops: PatchOp[] }
  | { readonly type: "resizePod"; readonly podName: string; readonly requests: RunnerSize }
  | { readonly type: "plugCpu" }
  | { readonly type: "unplugCpu" }
  | { readonly type: "runnerCpuChange"; readonly milliCpu: number }
  | { readonly type: "setVirtioMemSize"; readonly bytes: number }
  | {
    readonly type: "event";
    readonly eventType: "Normal" | "Warning";
    readonly reason: string;
    readonly message: string;
  };

/** The decision: actions in order and when to look again. */
export interface Decision {
  /** Actions to run in order; io stops at the first failure. */
  readonly actions: Action[];
  /** Reconcile again after this long (undefined: only on changes). */
  readonly requeueAfterMs: number | undefined;
}

/** Requeue while Scaling/Migrating (reference: 1 s). */
export const REQUEUE_FAST_MS = 1_000;
/** Requeue otherwise (reference: 15 s). */
export const REQUEUE_SLOW_MS = 15_000;
/** Requeue after a failed guest probe. */
export const REQUEUE_PROBE_FAILED_MS = 5_000;

/** First restart delay after a repeated failure; doubles per restart up to the cap. */
export const RESTART_BACKOFF_BASE_MS = 5_000;
/** Longest restart delay. */
export const RESTART_BACKOFF_MAX_MS = 300_000;

/**
 * How long to wait before restarting a terminated VM. Why: the reference restarts at once, so a
 * runner that always fails (bad image, missing capability) recreates pods in a hot loop; we
 * restart the first time at once, then back off 5 s, 10 s, 20 s, ... up to 5 min, measured from
 * when the VM became unavailable (the Available condition's transition time).
 */
export function restartWaitMs(status: VirtualMachineStatus, nowMs: number): number {
  if (status.restartCount < 1) return 0;
  const available = status.conditions?.find((c) => c.type === CONDITION_AVAILABLE);
  if (available === undefined || available.status === "True") return 0;
  const sinceMs = Date.parse(available.lastTransitionTime);
  if (!Number.isFinite(sinceMs)) return 0;
  const backoff = Math.min(
    RESTART_BACKOFF_MAX_MS,
    RESTART_BACKOFF_BASE_MS * 2 ** (status.restartCount - 1),
  );
  return Math.max(0, sinceMs + backoff - nowMs);
}

/** True when io must probe the guest (runner API + QMP) before deciding. */
export function needsGuestProbe(
  vm: VirtualMachine,
  pod: PodView | undefined,
  nowMs: number,
): boolean {
  const phase = vm.status?.phase;
  if (vm.metadata.deletionTimestamp) return false;
  if (phase !== "Running" && phase !== "Scaling") return false;
  return pod !== undefined && runnerStatus(pod, nowMs) === "Running";
}

/** True when a watch update of a VM should trigger a reconcile (not for status-only writes). */
export function shouldReconcileOnUpdate(old: VirtualMachine, next: VirtualMachine): boolean {
  const a = old.metadata;
  const b = next.metadata;
  return a.generation !== b.generation ||
    JSON.stringify(a.labels ?? {}) !== JSON.stringify(b.labels ?? {}) ||
    JSON.stringify(a.annotations ?? {}) !== JSON.stringify(b.annotations ?? {}) ||
    (a.deletionTimestamp ?? null) !== (b.deletionTimestamp ?? null) ||
    JSON.stringify(a.finalizers ?? []) !== JSON.stringify(b.finalizers ?? []);
}

function vmName(vm: VirtualMachine): string {
  return vm.metadata.name ?? "";
}

function podMessage(pod: string, vm: VirtualMachine, what: string): string {
  return `Pod (${pod}) for VirtualMachine (${vmName(vm)}) ${what}`;
}

/**
 * The status after an action failed: `Degraded=True` with the failure. Why: a QMP or runner
 * failure must show on the object and must not crash-loop the controller.
 */
export function failureStatus(
  status: VirtualMachineStatus | undefined,
  failure: Failure,
  nowMs: number,
): VirtualMachineStatus {
  const base: VirtualMachineStatus = status ?? { restartCount: 0 };
  return {
    ...base,
    conditions: setCondition(base.conditions, {
      type: CONDITION_DEGRADED,
      status: "True",
      reason: failure.reason,
      message: failure.message.slice(0, 32_000),
    }, formatK8sTime(nowMs)),
  };
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(sortKeysDeep(a)) === JSON.stringify(sortKeysDeep(b));
}

/** Plans the CPU step of a scaling round (§5.4); `done` when nothing is left to do. */
export function planCpu(
  useMilliCpu: number,
  mode: CpuScalingMode,
  guest: GuestObservation,
): { actions: Action[]; done: boolean } {
  if (mode === "SysfsScaling") {
    return useMilliCpu !== guest.cgroupMilliCpu
      ? { actions: [{ type: "runnerCpuChange", milliCpu: useMilliCpu }], done: false }
      : { actions: [], done: true };
  }
  const want = Math.ceil(useMilliCpu / 1000);
  if (want > guest.pluggedCpus) return { actions: [{ type: "plugCpu" }], done: false };
  if (want < guest.pluggedCpus) return { actions: [{ type: "unplugCpu" }], done: false };
  if (useMilliCpu !== guest.cgroupMilliCpu) {
    return { actions: [{ type: "runnerCpuChange", milliCpu: useMilliCpu }], done: false };
  }
  return { actions: [], done: true };
}

/** Plans the memory step of a scaling round (§5.5); `done` when the guest has the target. */
export function planMemory(
  vm: VirtualMachine,
  guest: GuestObservation,
): { actions: Action[]; done: boolean } {
  const g = vm.spec.guest;
  const wantTotal = g.memorySlots.use * g.memorySlotSize;
  if (g.memorySlots.min === g.memorySlots.max) return { actions: [], done: true };
  const target = (g.memorySlots.use - g.memorySlots.min) * g.memorySlotSize;
  const actions: Action[] = guest.virtioMemRequestedBytes !== target
    ? [{ type: "setVirtioMemSize", bytes: target }]
    : [];
  return { actions, done: guest.memoryBytes === wantTotal && actions.length === 0 };
}

function guestNeedsScaling(vm: VirtualMachine, mode: CpuScalingMode, g: GuestObservation) {
  return !planCpu(vm.spec.guest.cpus.use, mode, g).done || !planMemory(vm, g).done;
}

function describeSize(milliCpu: number, memBytes: number): string {
  return `cpus ${formatMilliCpu(milliCpu)}, memory ${formatBinarySi(memBytes)}`;
}

/** Decides what to do for one VM. */
export function reconcileVm(
  vm: VirtualMachine,
  obs: Observations,
  nowMs: number,
  settings: ReconcileSettings,
): Decision {
  const nowText = formatK8sTime(nowMs);
  const finalizers = vm.metadata.finalizers ?? [];
  const pod = obs.pod;

  // 1. Deletion and finalizer.
  if (vm.metadata.deletionTimestamp) {
    const actions: Action[] = [];
    if (pod !== undefined && pod.deletionTimestampMs === undefined) {
      actions.push({ type: "deletePod", podName: pod.name });
    }
    if (finalizers.includes(FINALIZER)) actions.push({ type: "removeFinalizer" });
    return { actions, requeueAfterMs: undefined };
  }
  if (!finalizers.includes(FINALIZER)) {
    return { actions: [{ type: "addFinalizer" }], requeueAfterMs: 0 };
  }
  // 2. Default the CPU scaling mode (a spec write; the next round continues).
  const mode = vm.spec.cpuScalingMode;
  if (mode === undefined) {
    return {
      actions: [{ type: "setCpuScalingMode", mode: settings.defaultCpuScalingMode }],
      requeueAfterMs: 0,
    };
  }

  const before: VirtualMachineStatus = vm.status ?? { restartCount: 0 };
  let status: VirtualMachineStatus = { ...before };
  const actions: Action[] = [];
  const events: Action[] = [];
  const event = (eventType: "Normal" | "Warning", reason: string, message: string) =>
    events.push({ type: "event", eventType, reason, message });
  const setCond = (
    type: string,
    st: "True" | "False" | "Unknown",
    reason: string,
    message: string,
  ) => {
    status = {
      ...status,
      conditions: setCondition(status.conditions, { type, status: st, reason, message }, nowText),
    };
  };
  let requeueAfterMs: number | undefined = REQUEUE_SLOW_MS;
  let healthy = false;

  if (!status.conditions || status.conditions.length === 0) {
    setCond(CONDITION_AVAILABLE, "Unknown", "Reconciling", "Starting reconciliation");
  }

  const syncMetadata = (p: PodView) => {
    const ops = podMetadataPatch(p, expectedPodLabels(vm), expectedPodAnnotations(vm));
    if (ops.length > 0) actions.push({ type: "patchPodMetadata", podName: p.name, ops });
  };
  const toPhase = (phase: VmPhase) => {
    status = { ...status, phase };
  };
  const onTerminalRunner = (p: PodView, rs: "Succeeded" | "Failed") => {
    if (rs === "Succeeded") {
      toPhase("Succeeded");
      setCond(CONDITION_AVAILABLE, "False", "Reconciling", podMessage(p.name, vm, "succeeded"));
      event("Normal", "Succeeded", podMessage(p.name, vm, "succeeded"));
    } else {
      toPhase("Failed");
      // Why: the reference leaves Available=True on a failed VM; a failed VM is not available.
      setCond(CONDITION_AVAILABLE, "False", "Reconciling", podMessage(p.name, vm, "failed"));
      setCond(CONDITION_DEGRADED, "True", "Reconciling", podMessage(p.name, vm, "failed"));
      event("Warning", "Failed", podMessage(p.name, vm, "failed"));
    }
    requeueAfterMs = 0;
  };
  const onRunnerRunning = (p: PodView) => {
    status = { ...status, podIP: p.podIP, node: p.nodeName };
    if (status.podIP === undefined) delete status.podIP;
    if (status.node === undefined) delete status.node;
  };

  const phase = status.phase;
  switch (phase) {
    case undefined:
      // IPAM for extraNetwork is not implemented (no Multus here); the VM starts without it.
      toPhase("Pending");
      requeueAfterMs = 0;
      break;
    case "Pending": {
      if (status.podName === undefined) {
        // Persist the name before creating the pod, so a crash cannot create two pods.
        status = { ...status, podName: `${vmName(vm)}-${obs.newPodSuffix}` };
        requeueAfterMs = 0;
        break;
      }
      if (pod === undefined) {
        actions.push({ type: "createPod", podName: status.podName, mode });
        event("Normal", "Created", `Created runner pod ${status.podName}`);
        break;
      }
      syncMetadata(pod);
      const rs = runnerStatus(pod, nowMs);
      if (rs === "Running") {
        onRunnerRunning(pod);
        toPhase("Running");
        setCond(
          CONDITION_AVAILABLE,
          "True",
          "Reconciling",
          podMessage(pod.name, vm, "created successfully"),
        );
        event("Normal", "Running", `Runner pod ${pod.name} is running on ${pod.nodeName ?? "?"}`);
        requeueAfterMs = 0; // Probe the guest right away.
      } else if (rs === "Succeeded" || rs === "Failed") {
        onTerminalRunner(pod, rs);
      }
      break;
    }
    case "Running":
    case "Scaling": {
      if (pod === undefined) {
        toPhase("Failed");
        const msg = podMessage(status.podName ?? "", vm, "not found");
        setCond(CONDITION_AVAILABLE, "False", "Reconciling", msg);
        setCond(CONDITION_DEGRADED, "True", "Reconciling", msg);
        event("Warning", "PodNotFound", msg);
        requeueAfterMs = 0;
        break;
      }
      syncMetadata(pod);
      const rs = runnerStatus(pod, nowMs);
      if (rs === "Succeeded" || rs === "Failed") {
        onTerminalRunner(pod, rs);
        break;
      }
      if (rs !== "Running") break;
      onRunnerRunning(pod);
      const want = runnerRequests(vm, settings.runner);
      if (pod.runnerRequests !== undefined && !sameJson(pod.runnerRequests, want)) {
        actions.push({ type: "resizePod", podName: pod.name, requests: want });
      }
      const probe = obs.guest;
      if (probe === undefined) break; // io did not probe (should not happen); wait.
      if (!probe.ok) {
        setCond(CONDITION_DEGRADED, "True", probe.reason, probe.message);
        if (before.conditions?.find((c) => c.type === CONDITION_DEGRADED)?.status !== "True") {
          event("Warning", probe.reason, probe.message);
        }
        requeueAfterMs = REQUEUE_PROBE_FAILED_MS;
        break;
      }
      const g = probe.guest;
      status = {
        ...status,
        cpus: Math.min(g.cgroupMilliCpu, g.pluggedCpus * 1000),
        memorySize: g.memoryBytes,
      };
      healthy = true;
      const useMilli = vm.spec.guest.cpus.use;
      const useMem = vm.spec.guest.memorySlots.use * vm.spec.guest.memorySlotSize;
      if (phase === "Running" && guestNeedsScaling(vm, mode, g)) {
        toPhase("Scaling");
        event(
          "Normal",
          "Scaling",
          `Scaling from ${describeSize(status.cpus ?? 0, g.memoryBytes)} to ${
            describeSize(useMilli, useMem)
          }`,
        );
      }
      if (status.phase === "Scaling") {
        const cpu = planCpu(useMilli, mode, g);
        const mem = planMemory(vm, g);
        actions.push(...cpu.actions, ...mem.actions);
        if (cpu.done && mem.done) {
          toPhase("Running");
          event("Normal", "Scaled", `Scaled to ${describeSize(useMilli, useMem)}`);
        } else {
          requeueAfterMs = REQUEUE_FAST_MS;
        }
      }
      break;
    }
    case "Succeeded":
    case "Failed": {
      requeueAfterMs = undefined;
      if (pod !== undefined) {
        if (pod.deletionTimestampMs === undefined) {
          actions.push({ type: "deletePod", podName: pod.name });
        }
        if (pod.ownerReferenceCount > 0) {
          // A stuck terminating pod must not block VM deletion; continue next round.
          actions.push({ type: "removePodOwnerReferences", podName: pod.name });
          requeueAfterMs = REQUEUE_FAST_MS;
          break;
        }
        if (settings.atMostOnePod) {
          requeueAfterMs = REQUEUE_FAST_MS;
          break;
        }
      }
      const policy = vm.spec.restartPolicy;
      if (policy === "Always" || (policy === "OnFailure" && phase === "Failed")) {
        const waitMs = restartWaitMs(status, nowMs);
        if (waitMs > 0) {
          requeueAfterMs = waitMs;
          break;
        }
        // restartCount counts replaced pods: the cleanup clears podName, so the next Pending
        // round creates exactly one new pod.
        status = {
          ...statusAfterPodCleanup(status),
          phase: "Pending",
          restartCount: status.restartCount + 1,
        };
        event(
          "Normal",
          "Restarting",
          `Restarting VirtualMachine (restartPolicy ${policy}, restart ${status.restartCount})`,
        );
        requeueAfterMs = 0;
      }
      break;
    }
    case "PreMigrating":
    case "Migrating":
      // Migrations are driven by the migration reconcile; only keep the pod's metadata in sync.
      if (pod !== undefined) syncMetadata(pod);
      requeueAfterMs = REQUEUE_FAST_MS;
      break;
  }

  // Failures of earlier actions keep Degraded set until a round succeeds.
  if (obs.failure !== undefined) {
    setCond(CONDITION_DEGRADED, "True", obs.failure.reason, obs.failure.message);
  } else if (
    healthy && status.conditions?.some((c) => c.type === CONDITION_DEGRADED)
  ) {
    // Why: the reference never clears Degraded (§11); we remove it once the VM is healthy again,
    // so a healthy VM has exactly one condition (Available=True).
    status = {
      ...status,
      conditions: status.conditions.filter((c) => c.type !== CONDITION_DEGRADED),
    };
    event("Normal", "Recovered", "VirtualMachine is healthy again");
  }

  // Revisions: copy spec.targetRevision once the VM is Running (fully applied).
  const target = vm.spec.targetRevision;
  if (
    status.phase === "Running" && target !== undefined &&
    (status.currentRevision === undefined ||
      !revisionEquals(status.currentRevision.revision, target.revision))
  ) {
    status = { ...status, currentRevision: revisionWithTime(target.revision, nowMs) };
  }

  if (!sameJson(status, before)) actions.push({ type: "updateStatus", status });
  return { actions: [...actions, ...events], requeueAfterMs };
}
