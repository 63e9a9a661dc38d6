/**
 * Wires the VirtualMachine controller: a VM informer and a runner-pod informer feed a keyed work
 * queue (one reconcile at a time per VM, gated on generation and metadata changes), whose handler
 * is the `VmReconciler`. Everything runs in one task group until the signal aborts. It does not do
 * leader election (main.ts wraps `run` in it).
 * @module
 */
import { LABEL_APP_NAME, LABEL_VM_NAME } from "../../api/annotations.ts";
import { type VirtualMachine } from "../../api/virtualmachine.ts";
import type { Clock } from "../../lib/clock.ts";
import { Informer } from "../../lib/k8s/informer.ts";
import type { Pod } from "../../lib/k8s/core_types.ts";
import { WorkQueue } from "../../lib/k8s/work_queue.ts";
import type { Logger } from "../../lib/log.ts";
import { TaskGroup } from "../../lib/task_group.ts";
import { shouldReconcileOnUpdate } from "../core/reconcile.ts";
import type { ControllerMetrics } from "./metrics.ts";
import type { VirtualMachineMigration } from "../../api/virtualmachine_migration.ts";
import { type MigrationClient, MigrationReconciler } from "./migration_reconciler.ts";
import type { MigrationQmp } from "./migration_qmp.ts";
import {
  type PodClient,
  type VmClient,
  VmReconciler,
  type VmReconcilerDeps,
} from "./vm_reconciler.ts";

/** Options for {@linkcode VmController}. */
export interface VmControllerOptions extends Omit<VmReconcilerDeps, "cachedVm" | "vms" | "pods"> {
  /** VirtualMachine client. */
  readonly vms: VmClient;
  /** Pod client. */
  readonly pods: PodClient;
  /** Only watch this namespace (all when undefined). */
  readonly namespace?: string | undefined;
  /** Reconciles of distinct VMs in parallel. */
  readonly concurrency: number;
  /** Re-enqueue every VM this often as a safety net; default 5 min. */
  readonly resyncMs?: number;
  /** Metrics. */
  readonly metrics?: ControllerMetrics;
  /** Migration client and QMP; migrations are reconciled only when both are given. */
  readonly migrations?: { readonly client: MigrationClient; readonly qmp: MigrationQmp };
  /** Clock. */
  readonly clock: Clock;
  /** Logger. */
  readonly logger: Logger;
}

/** The running VirtualMachine controller. */
export class VmController {
  readonly #vmInformer: Informer<VirtualMachine>;
  readonly #podInformer: Informer<Pod>;
  readonly #queue: WorkQueue;
  readonly #migrationInformer: Informer<VirtualMachineMigration> | undefined;
  readonly #migrationQueue: WorkQueue | undefined;
  /** The reconciler (exposed for tests and state dumps). */
  readonly reconciler: VmReconciler;

  /** Builds the informers, queue and reconciler. */
  constructor(o: VmControllerOptions) {
    const ns = o.namespace;
    const log = o.logger;
    this.#vmInformer = new Informer<VirtualMachine>({
      list: (signal) => o.vms.list({ namespace: ns, signal }),
      watch: (resourceVersion, signal) => o.vms.watch({ namespace: ns, resourceVersion, signal }),
      clock: o.clock,
      logger: log.child("vm_informer"),
      resyncMs: o.resyncMs ?? 300_000,
    });
    const podSelector = `${LABEL_APP_NAME}=NeonVM`;
    this.#podInformer = new Informer<Pod>({
      list: (signal) => o.pods.list({ namespace: ns, labelSelector: podSelector, signal }),
      watch: (resourceVersion, signal) =>
        o.pods.watch({ namespace: ns, labelSelector: podSelector, resourceVersion, signal }),
      clock: o.clock,
      logger: log.child("pod_informer"),
    });
    this.reconciler = new VmReconciler({
      ...o,
      cachedVm: (key) => this.#vmInformer.get(key),
    });
    const m = o.metrics;
    this.#queue = new WorkQueue({
      handler: (key, signal) => this.reconciler.reconcile(key, signal),
      clock: o.clock,
      logger: log.child("queue"),
      concurrency: o.concurrency,
      onDone: (_key, durationMs, ok) => {
        m?.reconcileDuration.observe({ outcome: ok ? "ok" : "error" }, durationMs / 1000);
        m?.failingObjects.set(this.#queue.failing().size + this.reconciler.failures().size);
      },
    });
    this.#vmInformer.subscribe((ev) => {
      switch (ev.type) {
        case "add":
        case "resync":
          this.#queue.add(ev.key);
          return;
        case "update":
          if (shouldReconcileOnUpdate(ev.old, ev.object)) this.#queue.add(ev.key);
          return;
        case "delete":
          return;
      }
    });
    if (o.migrations !== undefined) {
      const client = o.migrations.client;
      const informer = new Informer<VirtualMachineMigration>({
        list: (signal) => client.list({ namespace: ns, signal }),
        watch: (resourceVersion, signal) =>
          client.watch({ namespace: ns, resourceVersion, signal }),
        clock: o.clock,
        logger: log.child("migration_informer"),
        resyncMs: o.resyncMs ?? 300_000,
      });
      const reconciler = new MigrationReconciler({
        migrations: client,
        vms: o.vms,
        pods: o.pods,
        cachedMigration: (key) => informer.get(key),
        qmp: o.migrations.qmp,
        events: o.events,
        clock: o.clock,
        logger: log.child("migration"),
        runner: o.settings.runner,
        random: o.random,
      });
      const queue = new WorkQueue({
        handler: (key, signal) => reconciler.reconcile(key, signal),
        clock: o.clock,
        logger: log.child("migration_queue"),
        concurrency: o.concurrency,
      });
      informer.subscribe((ev) => {
        if (ev.type !== "delete") queue.add(ev.key);
      });
      this.#migrationInformer = informer;
      this.#migrationQueue = queue;
    }
    this.#podInformer.subscribe((ev) => {
      const pod = ev.object;
      const vmName = pod.metadata.labels?.[LABEL_VM_NAME];
      if (vmName === undefined) return;
      this.#queue.add(`${pod.metadata.namespace ?? "default"}/${vmName}`);
    });
  }

  /** True once every informer has listed. */
  get synced(): boolean {
    return this.#vmInformer.synced && this.#podInformer.synced &&
      (this.#migrationInformer?.synced ?? true);
  }

  /** Runs informers and workers until the signal aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const group = new TaskGroup(signal);
    group.spawn("vm-informer", (s) => this.#vmInformer.run(s));
    group.spawn("pod-informer", (s) => this.#podInformer.run(s));
    group.spawn("workers", async (s) => {
      await this.#vmInformer.waitForSync(s);
      await this.#podInformer.waitForSync(s);
      await this.#queue.run(s);
    });
    const mi = this.#migrationInformer;
    const mq = this.#migrationQueue;
    if (mi !== undefined && mq !== undefined) {
      group.spawn("migration-informer", (s) => mi.run(s));
      group.spawn("migration-workers", async (s) => {
        await mi.waitForSync(s);
        await this.#vmInformer.waitForSync(s);
        await mq.run(s);
      });
    }
    await group.wait();
  }
}
