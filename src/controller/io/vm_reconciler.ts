/**
 * Runs one VirtualMachine reconcile: reads the VM (informer cache, or our own newer write), its
 * runner pod (live GET) and, when the core asks, the guest; asks the pure core for a decision;
 * executes the actions in order. A failed guest action (QMP, runner API) becomes a Warning Event
 * and `Degraded=True` on the VM, then a requeue: never a thrown error or crash loop. Other
 * failures (API conflicts, network) are thrown for the work queue to retry with backoff.
 * It decides nothing itself.
 * @module
 */
import { FINALIZER } from "../../api/annotations.ts";
import { formatBinarySi, formatMilliCpu } from "../../api/quantity.ts";
import {
  encodeVirtualMachineStatus,
  NEONVM_API_VERSION,
  type VirtualMachine,
  VirtualMachineSchema,
  type VirtualMachineStatus,
  type VirtualMachineWire,
} from "../../api/virtualmachine.ts";
import type { Clock } from "../../lib/clock.ts";
import { errorChainMessage } from "../../lib/errors.ts";
import { isConflict, isInvalid, isNotFound, type ResourceClient } from "../../lib/k8s/client.ts";
import type { Pod } from "../../lib/k8s/core_types.ts";
import type { EventSink } from "../../lib/k8s/events.ts";
import type { HandlerResult } from "../../lib/k8s/work_queue.ts";
import type { Logger } from "../../lib/log.ts";
import {
  type Action,
  type Failure,
  failureStatus,
  needsGuestProbe,
  type ReconcileSettings,
  reconcileVm,
  REQUEUE_PROBE_FAILED_MS,
} from "../core/reconcile.ts";
import { buildRunnerPod, type PodView } from "../core/runner_pod.ts";
import { type GuestIo, guestTarget, REASON_QMP_FAILED, REASON_RUNNER_FAILED } from "./guest.ts";
import type { ControllerMetrics } from "./metrics.ts";
import { podView } from "./pod_view.ts";
import { encodeRunnerArgs } from "./runner_args.ts";

/** Pod objects as written (the loose Pod schema's input type). */
export type PodClient = ResourceClient<Pod, Pod>;
/** VirtualMachine client. */
export type VmClient = ResourceClient<VirtualMachine, VirtualMachineWire>;

/** Dependencies of {@linkcode VmReconciler}. */
export interface VmReconcilerDeps {
  /** VirtualMachine client. */
  readonly vms: VmClient;
  /** Pod client. */
  readonly pods: PodClient;
  /** Reads a VM from the informer cache by `namespace/name`. */
  readonly cachedVm: (key: string) => VirtualMachine | undefined;
  /** Guest operations. */
  readonly guest: GuestIo;
  /** Event sink for VM events. */
  readonly events: EventSink;
  /** Time source. */
  readonly clock: Clock;
  /** Logger. */
  readonly logger: Logger;
  /** Decision settings. */
  readonly settings: ReconcileSettings;
  /** Random numbers in [0, 1) for pod name suffixes. */
  readonly random: () => number;
  /** Metrics, when exported. */
  readonly metrics?: ControllerMetrics;
}

const SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"; // as Kubernetes' generateName

const GUEST_ACTIONS = new Set<Action["type"]>([
  "plugCpu",
  "unplugCpu",
  "runnerCpuChange",
  "setVirtioMemSize",
]);

/** Event reasons for failed pod actions (status/finalizer conflicts are routine, no event). */
const POD_ACTION_FAILURE_REASONS: Partial<Record<Action["type"], string>> = {
  createPod: "PodCreateFailed",
  deletePod: "PodDeleteFailed",
  patchPodMetadata: "PodUpdateFailed",
  removePodOwnerReferences: "PodUpdateFailed",
};

function rvNumber(vm: VirtualMachine | undefined): bigint | undefined {
  const rv = vm?.metadata.resourceVersion;
  return rv !== undefined && /^\d+$/.test(rv) ? BigInt(rv) : undefined;
}

/** Executes reconciles for VirtualMachines. */
export class VmReconciler {
  readonly #d: VmReconcilerDeps;
  readonly #failures = new Map<string, Failure>();
  readonly #written = new Map<string, VirtualMachine>();

  /** Creates the reconciler. */
  constructor(deps: VmReconcilerDeps) {
    this.#d = deps;
  }

  /** Keys whose last guest action failed, with the failure. */
  failures(): ReadonlyMap<string, Failure> {
    return this.#failures;
  }

  /** The freshest copy of a VM: the cache, or our own later write when the cache lags. */
  #currentVm(key: string): VirtualMachine | undefined {
    const cached = this.#d.cachedVm(key);
    const written = this.#written.get(key);
    if (cached === undefined) {
      this.#written.delete(key);
      return undefined;
    }
    if (written === undefined) return cached;
    const a = rvNumber(cached);
    const b = rvNumber(written);
    if (a !== undefined && b !== undefined && b > a) return written;
    this.#written.delete(key);
    return cached;
  }

  #remember(key: string, vm: VirtualMachine): void {
    this.#written.set(key, vm);
  }

  #suffix(): string {
    let s = "";
    for (let i = 0; i < 5; i++) {
      s += SUFFIX_ALPHABET[Math.floor(this.#d.random() * SUFFIX_ALPHABET.length)];
    }
    return s;
  }

  /** Reconciles the VM with key `namespace/name`. */
  async reconcile(key: string, signal: AbortSignal): Promise<HandlerResult> {
    const d = this.#d;
    const vm = this.#currentVm(key);
    if (vm === undefined) {
      this.#failures.delete(key);
      return {};
    }
    const namespace = vm.metadata.namespace ?? "default";
    let pod: Pod | undefined;
    const podName = vm.status?.podName;
    if (podName !== undefined) {
      try {
        pod = await d.pods.get(podName, { namespace, signal });
      } catch (error) {
        if (!isNotFound(error)) throw error;
      }
    }
    const view = pod && podView(pod);
    const nowMs = d.clock.now();
    const guest = needsGuestProbe(vm, view, nowMs) && view?.podIP
      ? await d.guest.probe(guestTarget(vm, view.podIP), signal)
      : undefined;
    const decision = reconcileVm(
      vm,
      {
        pod: view,
        guest,
        failure: this.#failures.get(key),
        newPodSuffix: this.#suffix(),
      },
      nowMs,
      d.settings,
    );
    let current = vm;
    for (const action of decision.actions) {
      try {
        current = await this.#execute(key, current, view, action, signal);
        d.metrics?.actions.inc({ action: action.type, outcome: "ok" });
      } catch (error) {
        d.metrics?.actions.inc({ action: action.type, outcome: "error" });
        if (signal.aborted) throw error;
        if (!GUEST_ACTIONS.has(action.type)) {
          const reason = POD_ACTION_FAILURE_REASONS[action.type];
          if (reason !== undefined) {
            await d.events.record(
              this.#subject(current),
              "Warning",
              reason,
              errorChainMessage(error),
            );
          }
          throw error;
        }
        await this.#onGuestFailure(key, current, action, error, signal);
        return { requeueAfterMs: REQUEUE_PROBE_FAILED_MS };
      }
    }
    this.#failures.delete(key);
    return decision.requeueAfterMs === undefined ? {} : { requeueAfterMs: decision.requeueAfterMs };
  }

  async #onGuestFailure(
    key: string,
    vm: VirtualMachine,
    action: Action,
    error: unknown,
    signal: AbortSignal,
  ): Promise<void> {
    const d = this.#d;
    const failure: Failure = {
      reason: action.type === "runnerCpuChange" ? REASON_RUNNER_FAILED : REASON_QMP_FAILED,
      message: `Cannot ${action.type}: ${errorChainMessage(error)}`,
    };
    this.#failures.set(key, failure);
    d.logger.warn("guest action failed", { virtualmachine: key, action: action.type, error });
    await d.events.record(this.#subject(vm), "Warning", failure.reason, failure.message);
    const status = failureStatus(vm.status, failure, d.clock.now());
    try {
      await this.#writeStatus(key, vm, status, signal, false);
    } catch (writeError) {
      // The failure is remembered; the next round sets Degraded again.
      d.logger.warn("cannot record Degraded", { virtualmachine: key, error: writeError });
    }
  }

  #subject(vm: VirtualMachine) {
    return {
      apiVersion: NEONVM_API_VERSION,
      kind: "VirtualMachine",
      metadata: {
        name: vm.metadata.name ?? "",
        namespace: vm.metadata.namespace,
        uid: vm.metadata.uid,
        resourceVersion: vm.metadata.resourceVersion,
      },
    };
  }

  async #writeStatus(
    key: string,
    vm: VirtualMachine,
    status: VirtualMachineStatus,
    signal: AbortSignal,
    guarded: boolean,
  ): Promise<VirtualMachine> {
    const body: Record<string, unknown> = {
      ...(encodeVirtualMachineStatus(status) as Record<string, unknown>),
    };
    // Merge patch: fields we cleared must be sent as null.
    for (const k of Object.keys(vm.status ?? {})) if (!(k in body)) body[k] = null;
    const updated = await this.#d.vms.patch(vm.metadata.name ?? "", {
      type: "merge",
      body: {
        ...(guarded ? { metadata: { resourceVersion: vm.metadata.resourceVersion } } : {}),
        status: body,
      },
    }, { namespace: vm.metadata.namespace, subresource: "status", signal });
    this.#remember(key, updated);
    return updated;
  }

  async #execute(
    key: string,
    vm: VirtualMachine,
    pod: PodView | undefined,
    action: Action,
    signal: AbortSignal,
  ): Promise<VirtualMachine> {
    const d = this.#d;
    const name = vm.metadata.name ?? "";
    const namespace = vm.metadata.namespace ?? "default";
    const target = () => {
      if (!pod?.podIP) throw new Error(`runner pod of "${key}" has no IP`);
      return guestTarget(vm, pod.podIP);
    };
    switch (action.type) {
      case "addFinalizer":
      case "removeFinalizer": {
        const current = vm.metadata.finalizers ?? [];
        const finalizers = action.type === "addFinalizer"
          ? [...current, FINALIZER]
          : current.filter((f) => f !== FINALIZER);
        const updated = await d.vms.patch(name, {
          type: "merge",
          body: { metadata: { resourceVersion: vm.metadata.resourceVersion, finalizers } },
        }, { namespace, signal });
        this.#remember(key, updated);
        return updated;
      }
      case "setCpuScalingMode": {
        const updated = await d.vms.patch(name, {
          type: "merge",
          body: {
            metadata: { resourceVersion: vm.metadata.resourceVersion },
            spec: { cpuScalingMode: action.mode },
          },
        }, { namespace, signal });
        this.#remember(key, updated);
        return updated;
      }
      case "updateStatus": {
        const before = vm.status;
        const updated = await this.#writeStatus(key, vm, action.status, signal, true);
        this.#observeTransition(vm, before, action.status);
        return updated;
      }
      case "createPod": {
        const built = buildRunnerPod(
          vm,
          action.podName,
          await encodeRunnerArgs(vm),
          d.settings.runner,
          action.mode,
        );
        try {
          await d.pods.create(built, { namespace, signal });
        } catch (error) {
          if (!isConflict(error)) throw error; // AlreadyExists: created by an earlier round.
        }
        return vm;
      }
      case "deletePod":
        try {
          await d.pods.delete(action.podName, { namespace, signal });
        } catch (error) {
          if (!isNotFound(error)) throw error;
        }
        return vm;
      case "removePodOwnerReferences":
        try {
          await d.pods.patch(action.podName, {
            type: "json",
            ops: [{ op: "remove", path: "/metadata/ownerReferences" }],
          }, { namespace, signal });
        } catch (error) {
          if (!isNotFound(error) && !isInvalid(error)) throw error;
        }
        return vm;
      case "patchPodMetadata":
        await d.pods.patch(action.podName, { type: "json", ops: action.ops }, {
          namespace,
          signal,
        });
        return vm;
      case "resizePod":
        try {
          await d.pods.patch(action.podName, {
            type: "strategic",
            body: {
              spec: {
                containers: [{
                  name: "neonvm-runner",
                  resources: {
                    requests: {
                      cpu: formatMilliCpu(action.requests.milliCpu),
                      memory: formatBinarySi(action.requests.memBytes),
                    },
                  },
                }],
              },
            },
          }, { namespace, subresource: "resize", signal });
        } catch (error) {
          // Why: a refused resize (old kubelet, no room) must not stop guest scaling; the pod
          // keeps its old requests and the next round tries again.
          if (signal.aborted) throw error;
          await d.events.record(
            this.#subject(vm),
            "Warning",
            "PodResizeFailed",
            `Cannot resize runner pod ${action.podName}: ${errorChainMessage(error)}`,
          );
        }
        return vm;
      case "plugCpu":
        await d.guest.plugCpu(target(), signal);
        return vm;
      case "unplugCpu":
        await d.guest.unplugCpu(target(), signal);
        return vm;
      case "runnerCpuChange":
        await d.guest.runnerCpuChange(target(), action.milliCpu, signal);
        return vm;
      case "setVirtioMemSize":
        await d.guest.setVirtioMemSize(target(), action.bytes, signal);
        return vm;
      case "event":
        await d.events.record(this.#subject(vm), action.eventType, action.reason, action.message);
        return vm;
    }
  }

  #observeTransition(
    vm: VirtualMachine,
    before: VirtualMachineStatus | undefined,
    after: VirtualMachineStatus,
  ): void {
    const m = this.#d.metrics;
    if (!m) return;
    const createdMs = Date.parse(vm.metadata.creationTimestamp ?? "");
    const nowMs = this.#d.clock.now();
    if (after.restartCount > (before?.restartCount ?? 0)) m.vmRestarts.inc();
    if (before?.phase === "Pending" && after.phase === "Running" && Number.isFinite(createdMs)) {
      m.creationToRunning.observe((nowMs - createdMs) / 1000);
    }
  }
}

/** Parses a VM (for tests and callers that hold raw JSON). */
export function parseVm(raw: unknown): VirtualMachine {
  return VirtualMachineSchema.parse(raw);
}
