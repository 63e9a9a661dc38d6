/**
 * Feeds cluster objects into the accounting: Node, Pod, VirtualMachine and plugin-created
 * VirtualMachineMigration add/update/delete events (from informers, patch responses or GETs) are
 * parsed at this edge and applied to the core state. Objects older than the copy already applied
 * (by resourceVersion) are ignored, so a late watch event never undoes a newer patch response.
 * Performs no API calls itself.
 * @module
 */
import { SchedNodeSchema, SchedPodSchema } from "../../api/extender.ts";
import type { Logger } from "../../lib/log.ts";
import {
  LABEL_CREATED_BY_SCHEDULER,
  nodeInfoFromObject,
  type PodInfo,
  podInfoFromObject,
} from "../core/objects.ts";
import {
  type ClusterState,
  deleteMigration,
  deleteNode,
  deletePod,
  deleteVm,
  key,
  upsertMigration,
  upsertNode,
  upsertPod,
  upsertVm,
} from "../core/state.ts";
import {
  migrationViewFromObject,
  resourceVersionNumber,
  SchedMigrationSchema,
  SchedVmSchema,
  vmViewFromObject,
} from "./objects.ts";

/** Applies objects of every kind to a state. */
export class ClusterSync {
  readonly #state: ClusterState;
  readonly #logger: Logger;
  readonly #vmVersions = new Map<string, number>();
  /** Called after a node's accounting may have changed (for balancing). */
  onNodeChanged: (node: string) => void = () => {};

  /** Creates a sync over `state`. */
  constructor(state: ClusterState, logger: Logger) {
    this.#state = state;
    this.#logger = logger;
  }

  /** Adds or updates a Node. */
  node(raw: unknown): void {
    const r = SchedNodeSchema.safeParse(raw);
    if (!r.success) {
      return this.#logger.warn("Ignoring unparsable Node", { error: r.error.message });
    }
    upsertNode(this.#state, nodeInfoFromObject(r.data, this.#state.config.watermark));
    this.onNodeChanged(r.data.metadata.name);
  }

  /** Removes a Node. */
  nodeDeleted(name: string): void {
    deleteNode(this.#state, name);
  }

  /** Parses a pod; a VM pod with broken annotations is counted by its container requests. */
  podInfo(raw: unknown): PodInfo | undefined {
    const r = SchedPodSchema.safeParse(raw);
    if (!r.success) {
      this.#logger.warn("Ignoring unparsable Pod", { error: r.error.message });
      return undefined;
    }
    const info = podInfoFromObject(r.data);
    if (info.ok) return info.value;
    this.#logger.warn("Pod has bad scheduler annotations; counting its requests", {
      pod: key(r.data.metadata.namespace ?? "default", r.data.metadata.name),
      error: info.error,
    });
    const plain = podInfoFromObject({
      ...r.data,
      metadata: { ...r.data.metadata, ownerReferences: [], annotations: {} },
    });
    return plain.ok ? plain.value : undefined;
  }

  /** Adds or updates a Pod. */
  pod(raw: unknown): void {
    const info = this.podInfo(raw);
    if (info === undefined) return;
    const before = this.#state.pods.get(info.uid)?.contribution?.node;
    upsertPod(this.#state, info);
    const after = this.#state.pods.get(info.uid)?.contribution?.node;
    if (before !== undefined) this.onNodeChanged(before);
    if (after !== undefined && after !== before) this.onNodeChanged(after);
  }

  /** Removes a Pod. */
  podDeleted(raw: unknown): void {
    const r = SchedPodSchema.safeParse(raw);
    if (!r.success) return;
    const ns = r.data.metadata.namespace ?? "default";
    const uid = r.data.metadata.uid ?? this.#state.podsByName.get(key(ns, r.data.metadata.name));
    if (uid === undefined) return;
    const node = this.#state.pods.get(uid)?.contribution?.node;
    deletePod(this.#state, uid);
    if (node !== undefined) this.onNodeChanged(node);
  }

  /** Adds or updates a VirtualMachine unless an equal or newer copy was applied already. */
  vm(raw: unknown): void {
    const r = SchedVmSchema.safeParse(raw);
    if (!r.success) {
      return this.#logger.warn("Ignoring unparsable VirtualMachine", { error: r.error.message });
    }
    const view = vmViewFromObject(r.data);
    const k = key(view.namespace, view.name);
    const rv = resourceVersionNumber(r.data.metadata.resourceVersion);
    const seen = this.#vmVersions.get(k);
    const sameObject = this.#state.vms.get(k)?.view?.uid === view.uid;
    if (sameObject && seen !== undefined && !Number.isNaN(rv) && rv <= seen) return;
    if (!Number.isNaN(rv)) this.#vmVersions.set(k, rv);
    upsertVm(this.#state, view);
  }

  /** Removes a VirtualMachine. */
  vmDeleted(raw: unknown): void {
    const r = SchedVmSchema.safeParse(raw);
    if (!r.success) return;
    const ns = r.data.metadata.namespace ?? "default";
    this.#vmVersions.delete(key(ns, r.data.metadata.name));
    deleteVm(this.#state, ns, r.data.metadata.name);
  }

  /** Adds or updates a plugin-created migration (others are ignored). */
  migration(raw: unknown): void {
    const r = SchedMigrationSchema.safeParse(raw);
    if (!r.success) return;
    if (r.data.metadata.labels?.[LABEL_CREATED_BY_SCHEDULER] === undefined) return;
    upsertMigration(this.#state, migrationViewFromObject(r.data));
  }

  /** Removes a migration. */
  migrationDeleted(raw: unknown): void {
    const r = SchedMigrationSchema.safeParse(raw);
    if (!r.success) return;
    deleteMigration(this.#state, r.data.metadata.namespace ?? "default", r.data.metadata.name);
  }
}
