/**
 * The scheduler wired together: informers on Nodes, Pods, VirtualMachines and plugin-created
 * VirtualMachineMigrations feed the accounting; the permit and extender handlers, the annotation
 * writer and the migration manager act on it; optional Lease-based leader election gates every
 * decision. No decision is made before every informer has listed (`state.synced`), and a replica
 * that loses the lease stops (its task group fails) rather than risk two deciders.
 * Listening on sockets is left to `main.ts` (and tests call the handlers directly).
 * @module
 */
import { SchedNodeSchema, SchedPodSchema } from "../../api/extender.ts";
import type { SchedulerConfig } from "../../api/scheduler_config.ts";
import type { Clock } from "../../lib/clock.ts";
import { TimeoutError } from "../../lib/errors.ts";
import type { KubeClient } from "../../lib/k8s/client.ts";
import { LeaseSchema } from "../../lib/k8s/core_types.ts";
import { Informer, type InformerEvent } from "../../lib/k8s/informer.ts";
import { runLeaderElection } from "../../lib/k8s/leader_election.ts";
import {
  LEASES,
  NODES,
  type ObjectLike,
  PODS,
  VIRTUAL_MACHINE_MIGRATIONS,
  VIRTUAL_MACHINES,
} from "../../lib/k8s/meta.ts";
import type { Logger } from "../../lib/log.ts";
import { TaskGroup } from "../../lib/task_group.ts";
import { LABEL_CREATED_BY_SCHEDULER } from "../core/objects.ts";
import { type ClusterState, newClusterState } from "../core/state.ts";
import { ClusterSync } from "./cluster_sync.ts";
import { createExtenderHandler } from "./extender_handler.ts";
import { kubeFromClient, type SchedulerKube } from "./kube.ts";
import { createMetrics, type SchedulerMetrics } from "./metrics.ts";
import { MigrationManager } from "./migrations.ts";
import { SchedMigrationSchema, SchedVmSchema } from "./objects.ts";
import { createPermitHandler } from "./permit_handler.ts";
import { createMainHandler, createOpsHandler, type Handler } from "./server.ts";
import { VmAnnotationWriter } from "./vm_writer.ts";

/** Leader election settings. */
export interface LeaderElectionSettings {
  /** Lease namespace. */
  readonly namespace: string;
  /** Lease name. */
  readonly name: string;
  /** This replica's identity. */
  readonly identity: string;
}

/** Options for {@linkcode SchedulerApp}. */
export interface SchedulerAppOptions {
  /** Parsed config file. */
  config: SchedulerConfig;
  /** API client. */
  client: KubeClient;
  /** Replaces the API calls (tests); default built from `client`. */
  kube?: SchedulerKube;
  /** Logger. */
  logger: Logger;
  /** Clock. */
  clock: Clock;
  /** Random numbers in [0, 1) for score randomisation. */
  random: () => number;
  /** Leader election; undefined = always leader (reference: `leaderElect: false`). */
  leaderElection?: LeaderElectionSettings | undefined;
  /** Informer relist wait after errors; default 3000 ms (reference: 3–5 s). */
  informerRetryMs?: number;
  /** Never create migrations. */
  disableMigrations?: boolean;
  /** Only VMs in these namespaces may be migrated; all when undefined. */
  migrationNamespaces?: ReadonlySet<string> | undefined;
}

/** The composed scheduler. */
export class SchedulerApp {
  /** Accounting state. */
  readonly state: ClusterState;
  /** Metrics. */
  readonly metrics: SchedulerMetrics;
  /** Handler for :10299 (permit + extender). */
  readonly mainHandler: Handler;
  /** Handler for :9100 (metrics, health). */
  readonly opsHandler: Handler;
  /** Object → state. */
  readonly sync: ClusterSync;
  /** Migration manager. */
  readonly migrations: MigrationManager;
  readonly #o: SchedulerAppOptions;
  readonly #kube: SchedulerKube;
  readonly #ready = new AbortController();
  #leader: boolean;
  #writer: VmAnnotationWriter | undefined;
  #failed = false;
  readonly #writerSignal = new AbortController();

  /** Builds everything; nothing runs until `run`. */
  constructor(o: SchedulerAppOptions) {
    this.#o = o;
    this.#leader = o.leaderElection === undefined;
    this.state = newClusterState({
      watermark: o.config.watermark,
      ignoredNamespaces: new Set(o.config.ignoredNamespaces),
      schedulerName: o.config.schedulerName,
    });
    this.metrics = createMetrics(this.state, o.config.nodeMetricLabels);
    this.#kube = o.kube ?? kubeFromClient(o.client, o.config.k8sCRUDTimeoutSeconds * 1000);
    this.sync = new ClusterSync(this.state, o.logger.child("sync"));
    const isLeader = () => this.#leader;
    this.migrations = new MigrationManager({
      state: this.state,
      kube: this.#kube,
      logger: o.logger.child("migrations"),
      clock: o.clock,
      isLeader,
      metrics: this.metrics,
      disabled: o.disableMigrations ?? false,
      namespaces: o.migrationNamespaces,
    });
    this.sync.onNodeChanged = (n) => this.migrations.nodeChanged(n);
    const writer = new VmAnnotationWriter({
      state: this.state,
      kube: this.#kube,
      applyVm: (raw) => this.sync.vm(raw),
      logger: o.logger.child("writer"),
      clock: o.clock,
      retryMs: o.config.patchRetryWaitSeconds * 1000,
      // The reference's reconcile workers make its VM patches; here they bound ours.
      maxConcurrentCalls: o.config.reconcileWorkers,
      observe: (op, kind, outcome) => this.metrics.k8sOps.inc({ op, kind, outcome }),
      signal: this.#writerSignal.signal,
    });
    this.#writer = writer;
    const permit = createPermitHandler({
      state: this.state,
      writer,
      logger: o.logger.child("permit"),
      clock: o.clock,
      isLeader,
      metrics: this.metrics,
      onGrant: (g) => {
        if (g.decision.denied.cpu > 0 || g.decision.denied.mem > 0) {
          this.migrations.nodeChanged(g.node);
        }
      },
    });
    const extender = createExtenderHandler({
      state: this.state,
      sync: this.sync,
      kube: this.#kube,
      scoring: o.config.scoring,
      random: o.random,
      isLeader,
      logger: o.logger.child("extender"),
      metrics: this.metrics,
    });
    this.mainHandler = createMainHandler(permit, extender);
    this.opsHandler = createOpsHandler({
      registry: this.metrics.registry,
      healthy: () => !this.#failed,
      ready: () =>
        !this.state.synced ? "state not synced" : !this.#leader ? "not the leader" : undefined,
    });
  }

  /** Resolves once every informer has listed and the state is synced. */
  get readySignal(): AbortSignal {
    return this.#ready.signal;
  }

  /** Runs informers, migrations and leader election until `signal` aborts or something fails. */
  async run(signal: AbortSignal): Promise<void> {
    const o = this.#o;
    const log = o.logger;
    const retryMs = o.informerRetryMs ?? 3000;
    const c = o.client;
    const mk = <T extends { metadata?: { name?: string } }>(
      inf: Informer<T & ObjectLike>,
      up: (raw: unknown) => void,
      del: (raw: unknown) => void,
    ) => {
      inf.subscribe((ev: InformerEvent<unknown>) => {
        if (ev.type === "delete") del(ev.object);
        else up(ev.object);
      });
      return inf;
    };
    const nodes = c.resource(NODES, SchedNodeSchema);
    const pods = c.resource(PODS, SchedPodSchema);
    const vms = c.resource(VIRTUAL_MACHINES, SchedVmSchema);
    const migs = c.resource(VIRTUAL_MACHINE_MIGRATIONS, SchedMigrationSchema);
    const base = { clock: o.clock, retryMs };
    const informers = [
      mk(
        new Informer({
          ...base,
          logger: log.child("nodes"),
          list: (s) => nodes.list({ signal: s }),
          watch: (rv, s) => nodes.watch({ resourceVersion: rv, signal: s }),
        }),
        (r) => this.sync.node(r),
        (r) => this.sync.nodeDeleted((r as { metadata: { name: string } }).metadata.name),
      ),
      mk(
        new Informer({
          ...base,
          logger: log.child("pods"),
          list: (s) => pods.list({ signal: s }),
          watch: (rv, s) => pods.watch({ resourceVersion: rv, signal: s }),
        }),
        (r) => this.sync.pod(r),
        (r) => this.sync.podDeleted(r),
      ),
      mk(
        new Informer({
          ...base,
          logger: log.child("vms"),
          list: (s) => vms.list({ signal: s }),
          watch: (rv, s) => vms.watch({ resourceVersion: rv, signal: s }),
        }),
        (r) => this.sync.vm(r),
        (r) => this.sync.vmDeleted(r),
      ),
      mk(
        new Informer({
          ...base,
          logger: log.child("migrations"),
          list: (s) => migs.list({ signal: s, labelSelector: LABEL_CREATED_BY_SCHEDULER }),
          watch: (rv, s) =>
            migs.watch({
              resourceVersion: rv,
              signal: s,
              labelSelector: LABEL_CREATED_BY_SCHEDULER,
            }),
        }),
        (r) => this.sync.migration(r),
        (r) => this.sync.migrationDeleted(r),
      ),
    ];
    await using group = new TaskGroup(signal);
    for (const [i, inf] of informers.entries()) {
      group.spawn(`informer-${i}`, (s) => inf.run(s));
    }
    group.spawn("startup", async (s) => {
      const timeoutMs = o.config.startupEventHandlingTimeoutSeconds * 1000;
      const deadline = new AbortController();
      const timer = o.clock.sleep(timeoutMs, AbortSignal.any([s, deadline.signal])).then(
        () => true,
        () => false,
      );
      const synced = Promise.all(informers.map((inf) => inf.waitForSync(s))).then(() => false);
      const timedOut = await Promise.race([synced, timer]);
      deadline.abort();
      if (timedOut) {
        throw new TimeoutError(
          `Initial lists not loaded within ${o.config.startupEventHandlingTimeoutSeconds}s`,
        );
      }
      this.state.synced = true;
      this.#ready.abort();
      log.info("State synced; approvals enabled", {
        nodes: this.state.nodes.size,
        pods: this.state.pods.size,
        vms: this.state.vms.size,
      });
      await this.migrations.run(s);
    });
    const le = o.leaderElection;
    if (le !== undefined) {
      group.spawn("leader-election", async (s) => {
        await runLeaderElection(
          {
            leases: c.resource(LEASES, LeaseSchema),
            namespace: le.namespace,
            name: le.name,
            identity: le.identity,
            clock: o.clock,
            logger: log.child("leader"),
          },
          s,
          async (leading) => {
            this.#leader = true;
            log.info("Leading", { identity: le.identity });
            try {
              await new Promise<void>((resolve) =>
                leading.addEventListener("abort", () => resolve(), { once: true })
              );
            } finally {
              this.#leader = false;
            }
          },
        );
        if (!s.aborted) {
          throw new Error("Leader election ended; stopping so no two replicas decide");
        }
      });
    }
    try {
      await group.wait();
    } catch (error) {
      this.#failed = true;
      throw error;
    } finally {
      this.#writerSignal.abort();
    }
  }

  /** Number of VMs with annotation writes pending (for shutdown and tests). */
  get pendingWrites(): number {
    return this.#writer?.busy ?? 0;
  }
}
