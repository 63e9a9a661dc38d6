/**
 * Starts and cleans up migrations: nodes whose accounting changed are balanced (the core chooses
 * which VMs move), a `VirtualMachineMigration` named `schedplugin-<pod>` labelled
 * `autoscaling.neon.tech/created-by-scheduler` is created for each choice, and plugin-created
 * migrations that reached Succeeded or Failed are deleted (with a UID precondition). Runs only
 * while this replica leads and the state is synced.
 * @module
 */
import type { Clock } from "../../lib/clock.ts";
import { RemoteError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { type MigrationChoice, startMigrations } from "../core/balance.ts";
import { LABEL_CREATED_BY_SCHEDULER, NEONVM_API_VERSION } from "../core/objects.ts";
import { type ClusterState, isFinished, setMigrationRequested } from "../core/state.ts";
import type { SchedulerKube } from "./kube.ts";
import type { SchedulerMetrics } from "./metrics.ts";

/** The migration object the scheduler creates for a chosen pod (reference §4.3 defaults). */
export function buildMigration(c: MigrationChoice): Record<string, unknown> {
  return {
    apiVersion: NEONVM_API_VERSION,
    kind: "VirtualMachineMigration",
    metadata: {
      name: `schedplugin-${c.podName}`,
      namespace: c.namespace,
      labels: { [LABEL_CREATED_BY_SCHEDULER]: "true" },
    },
    spec: {
      vmName: c.vmName,
      preventMigrationToSameHost: true,
      completionTimeout: 3600,
      incremental: true,
      autoConverge: true,
      maxBandwidth: "1Gi",
      allowPostCopy: false,
    },
  };
}

/** Options for {@linkcode MigrationManager}. */
export interface MigrationManagerOptions {
  /** The accounting state. */
  state: ClusterState;
  /** API calls. */
  kube: SchedulerKube;
  /** Logger. */
  logger: Logger;
  /** Clock. */
  clock: Clock;
  /** Whether this replica may act. */
  isLeader: () => boolean;
  /** Loop period; default 1000 ms. */
  periodMs?: number;
  /** Every how many periods all nodes are balanced; default 5. */
  fullSweepEvery?: number;
  /** Metrics, when exported. */
  metrics?: SchedulerMetrics;
  /** Disables creating migrations (finished ones are still cleaned up). */
  disabled?: boolean;
  /** Only VMs in these namespaces may be chosen; all when undefined. */
  namespaces?: ReadonlySet<string> | undefined;
}

/** Balances nodes and cleans up finished migrations. */
export class MigrationManager {
  readonly #o: MigrationManagerOptions;
  readonly #dirty = new Set<string>();
  readonly #deleting = new Set<string>();

  /** Creates a manager. */
  constructor(options: MigrationManagerOptions) {
    this.#o = options;
  }

  /** Marks a node for balancing at the next tick. */
  nodeChanged(node: string): void {
    this.#dirty.add(node);
  }

  /** One pass: balance dirty (or all) nodes, delete finished migrations. */
  async tick(all: boolean, signal?: AbortSignal): Promise<void> {
    const s = this.#o.state;
    if (!s.synced || !this.#o.isLeader()) return;
    const nodes = all ? [...s.nodes.keys()] : [...this.#dirty];
    this.#dirty.clear();
    const work: Promise<void>[] = [];
    for (const node of nodes) {
      for (const c of startMigrations(s, node, this.#o.clock.now())) {
        work.push(this.#create(c, signal));
      }
    }
    for (const m of s.migrations.values()) {
      const k = `${m.namespace}/${m.name}`;
      if (isFinished(m) && !m.deleting && !this.#deleting.has(k)) {
        this.#deleting.add(k);
        work.push(
          this.#delete(m.namespace, m.name, m.uid, signal).finally(() => this.#deleting.delete(k)),
        );
      }
    }
    await Promise.all(work);
  }

  /** Runs ticks until the signal aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const every = this.#o.fullSweepEvery ?? 5;
    for (let i = 0; !signal.aborted; i++) {
      await this.tick(i % every === 0, signal);
      await this.#o.clock.sleep(this.#o.periodMs ?? 1000, signal);
    }
  }

  async #create(c: MigrationChoice, signal?: AbortSignal): Promise<void> {
    const body = buildMigration(c);
    try {
      await this.#o.kube.createMigration(c.namespace, body, signal);
      this.#o.metrics?.k8sOps.inc({
        op: "create",
        kind: "VirtualMachineMigration",
        outcome: "success",
      });
      this.#o.metrics?.migrationsCreated.inc();
      this.#o.logger.info("Created migration", {
        virtualmachine: `${c.namespace}/${c.vmName}`,
        pod: c.podName,
        node: c.node,
      });
    } catch (error) {
      if (error instanceof RemoteError && error.status === 409) return; // already exists: fine
      this.#o.metrics?.k8sOps.inc({
        op: "create",
        kind: "VirtualMachineMigration",
        outcome: "failure",
      });
      this.#o.logger.warn("Cannot create migration; will choose again", {
        virtualmachine: `${c.namespace}/${c.vmName}`,
        error,
      });
      setMigrationRequested(this.#o.state, c.podUid, false, this.#o.clock.now());
      this.#dirty.add(c.node);
    }
  }

  async #delete(namespace: string, name: string, uid: string, signal?: AbortSignal): Promise<void> {
    try {
      await this.#o.kube.deleteMigration(namespace, name, uid, signal);
      this.#o.metrics?.k8sOps.inc({
        op: "delete",
        kind: "VirtualMachineMigration",
        outcome: "success",
      });
    } catch (error) {
      if (error instanceof RemoteError && (error.status === 404 || error.status === 409)) return;
      this.#o.metrics?.k8sOps.inc({
        op: "delete",
        kind: "VirtualMachineMigration",
        outcome: "failure",
      });
      this.#o.logger.warn("Cannot delete finished migration", {
        migration: `${namespace}/${name}`,
        error,
      });
    }
  }
}
