/**
 * Runs one VirtualMachineMigration reconcile: reads the migration (cache), its VM and both runner
 * pods (live), and while Running the source's `query-migrate`; asks the pure core; executes the
 * actions (owner references, VM and migration status, target pod, QMP migration commands).
 * Cancel and quit are best effort (their failures are logged and recorded as Events). It decides
 * nothing itself.
 * @module
 */
import { FINALIZER } from "../../api/annotations.ts";
import {
  encodeVirtualMachineMigrationStatus,
  type VirtualMachineMigration,
  type VirtualMachineMigrationWire,
} from "../../api/virtualmachine_migration.ts";
import { NEONVM_API_VERSION, type VirtualMachine } from "../../api/virtualmachine.ts";
import type { Clock } from "../../lib/clock.ts";
import { errorChainMessage } from "../../lib/errors.ts";
import { isConflict, isNotFound, type ResourceClient } from "../../lib/k8s/client.ts";
import type { Pod } from "../../lib/k8s/core_types.ts";
import type { EventSink } from "../../lib/k8s/events.ts";
import type { HandlerResult } from "../../lib/k8s/work_queue.ts";
import type { Logger } from "../../lib/log.ts";
import {
  type MigrationAction,
  type MigrationObservations,
  reconcileMigration,
} from "../core/migration.ts";
import { buildTargetPod, type RunnerPodSettings } from "../core/runner_pod.ts";
import type { MigrationQmp } from "./migration_qmp.ts";
import { podView } from "./pod_view.ts";
import { encodeRunnerArgs } from "./runner_args.ts";
import type { PodClient, VmClient } from "./vm_reconciler.ts";

/** Migration client. */
export type MigrationClient = ResourceClient<VirtualMachineMigration, VirtualMachineMigrationWire>;

/** Dependencies of {@linkcode MigrationReconciler}. */
export interface MigrationReconcilerDeps {
  /** Migration client. */
  readonly migrations: MigrationClient;
  /** VM client. */
  readonly vms: VmClient;
  /** Pod client. */
  readonly pods: PodClient;
  /** Reads a migration from the informer cache by key. */
  readonly cachedMigration: (key: string) => VirtualMachineMigration | undefined;
  /** QMP operations. */
  readonly qmp: MigrationQmp;
  /** Event sink. */
  readonly events: EventSink;
  /** Clock. */
  readonly clock: Clock;
  /** Logger. */
  readonly logger: Logger;
  /** Runner pod settings (target pods). */
  readonly runner: RunnerPodSettings;
  /** Random numbers for target pod names. */
  readonly random: () => number;
}

const SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789";
const BEST_EFFORT = new Set<MigrationAction["type"]>(["cancelMigration", "quitQemu"]);

/** Executes migration reconciles. */
export class MigrationReconciler {
  readonly #d: MigrationReconcilerDeps;

  /** Creates the reconciler. */
  constructor(deps: MigrationReconcilerDeps) {
    this.#d = deps;
  }

  async #getPod(name: string | undefined, namespace: string, signal: AbortSignal) {
    if (name === undefined) return undefined;
    try {
      return await this.#d.pods.get(name, { namespace, signal });
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /** Reconciles the migration with key `namespace/name`. */
  async reconcile(key: string, signal: AbortSignal): Promise<HandlerResult> {
    const d = this.#d;
    let m = d.cachedMigration(key);
    if (m === undefined) return {};
    const namespace = m.metadata.namespace ?? "default";
    let vm: VirtualMachine | undefined;
    try {
      vm = await d.vms.get(m.spec.vmName, { namespace, signal });
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    const source = await this.#getPod(vm?.status?.podName, namespace, signal);
    const target = await this.#getPod(m.status?.targetPodName, namespace, signal);
    let progress: MigrationObservations["progress"];
    const sourceIP = m.status?.sourcePodIP ?? vm?.status?.podIP;
    if (m.status?.phase === "Running" && vm !== undefined && sourceIP !== undefined) {
      try {
        progress = { ok: true, value: await d.qmp.progress(sourceIP, vm.spec.qmp) };
      } catch (error) {
        progress = { ok: false, message: `Cannot query migration: ${errorChainMessage(error)}` };
      }
    }
    let suffix = "";
    for (let i = 0; i < 5; i++) {
      suffix += SUFFIX_ALPHABET[Math.floor(d.random() * SUFFIX_ALPHABET.length)];
    }
    const decision = reconcileMigration(m, {
      vm,
      sourcePod: source && podView(source),
      targetPod: target && podView(target),
      progress,
      newPodSuffix: suffix,
    }, d.clock.now());
    for (const action of decision.actions) {
      try {
        const next = await this.#execute(m, vm, source, target, action, signal);
        m = next.m;
        vm = next.vm;
      } catch (error) {
        if (!BEST_EFFORT.has(action.type) || signal.aborted) throw error;
        d.logger.warn("best-effort migration action failed", { migration: key, error });
        await d.events.record(
          this.#subject(m),
          "Warning",
          "MigrationActionFailed",
          `Cannot ${action.type}: ${errorChainMessage(error)}`,
        );
      }
    }
    return decision.requeueAfterMs === undefined ? {} : { requeueAfterMs: decision.requeueAfterMs };
  }

  #subject(m: VirtualMachineMigration) {
    return {
      apiVersion: NEONVM_API_VERSION,
      kind: "VirtualMachineMigration",
      metadata: {
        name: m.metadata.name ?? "",
        namespace: m.metadata.namespace,
        uid: m.metadata.uid,
      },
    };
  }

  async #execute(
    m: VirtualMachineMigration,
    vm: VirtualMachine | undefined,
    source: Pod | undefined,
    target: Pod | undefined,
    action: MigrationAction,
    signal: AbortSignal,
  ): Promise<{ m: VirtualMachineMigration; vm: VirtualMachine | undefined }> {
    const d = this.#d;
    const name = m.metadata.name ?? "";
    const namespace = m.metadata.namespace ?? "default";
    const rv = { resourceVersion: m.metadata.resourceVersion };
    const needVm = () => {
      if (vm === undefined) throw new Error(`VM "${namespace}/${m.spec.vmName}" is gone`);
      return vm;
    };
    const vmOwner = (controller: boolean) => {
      const v = needVm();
      return {
        apiVersion: NEONVM_API_VERSION,
        kind: "VirtualMachine",
        name: v.metadata.name ?? "",
        uid: v.metadata.uid ?? "",
        controller,
        blockOwnerDeletion: true,
      };
    };
    const migOwner = {
      apiVersion: NEONVM_API_VERSION,
      kind: "VirtualMachineMigration",
      name,
      uid: m.metadata.uid ?? "",
      controller: false,
      blockOwnerDeletion: true,
    };
    const patchVmStatus = async (status: Record<string, unknown>) => {
      const v = needVm();
      const updated = await d.vms.patch(v.metadata.name ?? "", {
        type: "merge",
        body: { metadata: { resourceVersion: v.metadata.resourceVersion }, status },
      }, { namespace, subresource: "status", signal });
      return { m, vm: updated };
    };
    const qmpPort = vm?.spec.qmp ?? 20183;
    const sourceIP = m.status?.sourcePodIP ?? vm?.status?.podIP ?? "";
    const targetIP = m.status?.targetPodIP ?? target?.status?.podIP ?? "";
    switch (action.type) {
      case "addFinalizer":
      case "removeFinalizer": {
        const cur = m.metadata.finalizers ?? [];
        const finalizers = action.type === "addFinalizer"
          ? [...cur, FINALIZER]
          : cur.filter((f) => f !== FINALIZER);
        const next = await d.migrations.patch(name, {
          type: "merge",
          body: { metadata: { ...rv, finalizers } },
        }, { namespace, signal });
        return { m: next, vm };
      }
      case "setVmOwner": {
        const others = (m.metadata.ownerReferences ?? []).filter((r) => r.controller !== true);
        const next = await d.migrations.patch(name, {
          type: "merge",
          body: { metadata: { ...rv, ownerReferences: [...others, vmOwner(true)] } },
        }, { namespace, signal });
        return { m: next, vm };
      }
      case "updateStatus": {
        const body: Record<string, unknown> = {
          ...(encodeVirtualMachineMigrationStatus(action.status) as Record<string, unknown>),
        };
        for (const k of Object.keys(m.status ?? {})) if (!(k in body)) body[k] = null;
        const next = await d.migrations.patch(name, {
          type: "merge",
          body: { metadata: rv, status: body },
        }, { namespace, subresource: "status", signal });
        return { m: next, vm };
      }
      case "setVmPhase":
        if (vm === undefined) return { m, vm };
        return await patchVmStatus({ phase: action.phase });
      case "setVmPod":
        return await patchVmStatus({
          podName: action.podName,
          podIP: action.podIP,
          // null removes a node that would otherwise keep naming the source's node.
          node: action.node ?? null,
          phase: "Running",
        });
      case "createTargetPod": {
        const v = needVm();
        const pod = buildTargetPod(
          v,
          m,
          action.podName,
          await encodeRunnerArgs(v),
          d.runner,
          v.spec.cpuScalingMode ?? "QmpScaling",
        );
        try {
          await d.pods.create(pod, { namespace, signal });
        } catch (error) {
          if (!isConflict(error)) throw error;
        }
        return { m, vm };
      }
      case "patchPodMetadata":
        await d.pods.patch(action.podName, { type: "json", ops: action.ops }, {
          namespace,
          signal,
        });
        return { m, vm };
      case "addSourcePodOwner":
        await d.pods.patch(action.podName, {
          type: "json",
          ops: source?.metadata.ownerReferences
            ? [{ op: "add", path: "/metadata/ownerReferences/-", value: migOwner }]
            : [{ op: "add", path: "/metadata/ownerReferences", value: [migOwner] }],
        }, { namespace, signal });
        return { m, vm };
      case "handOverPods":
        await d.pods.patch(action.targetPodName, {
          type: "merge",
          body: { metadata: { ownerReferences: [vmOwner(true)] } },
        }, { namespace, signal });
        if (action.sourcePodName !== "") {
          try {
            await d.pods.patch(action.sourcePodName, {
              type: "merge",
              body: { metadata: { ownerReferences: [migOwner, vmOwner(false)] } },
            }, { namespace, signal });
          } catch (error) {
            if (!isNotFound(error)) throw error;
          }
        }
        return { m, vm };
      case "syncTargetCpus":
        await d.qmp.syncTargetCpus(sourceIP, targetIP, qmpPort);
        return { m, vm };
      case "startMigration":
        await d.qmp.start(sourceIP, targetIP, qmpPort, {
          allowPostCopy: m.spec.allowPostCopy,
          autoConverge: m.spec.autoConverge,
          incremental: m.spec.incremental,
          maxBandwidthBytes: m.spec.maxBandwidth,
        });
        return { m, vm };
      case "cancelMigration":
        if (sourceIP !== "") await d.qmp.cancel(sourceIP, qmpPort);
        return { m, vm };
      case "quitQemu": {
        const ip = action.which === "source" ? sourceIP : targetIP;
        if (ip !== "") await d.qmp.quit(ip, qmpPort);
        return { m, vm };
      }
      case "deletePod":
        try {
          await d.pods.delete(action.podName, { namespace, signal });
        } catch (error) {
          if (!isNotFound(error)) throw error;
        }
        return { m, vm };
      case "event":
        await d.events.record(this.#subject(m), action.eventType, action.reason, action.message);
        return { m, vm };
    }
  }
}
