/**
 * The scheduler's node accounting: nodes, pods, VMs and plugin-created migrations, with per-node
 * sums kept up to date incrementally (reserved, committed, migrating, capacity pressure, pressure
 * accounted for). Everything here is derivable from cluster objects plus the decisions the permit
 * path made and is persisting; a restart rebuilds it from objects alone (reference §4.5).
 *
 * A VM pod reserves `max(actual use, approved annotation on the VM, our latest decision)`: an
 * increase counts from the moment it is decided (before it is persisted), a decrease frees room
 * only once it is persisted. That keeps the sum safe across crashes in both directions.
 *
 * Pure: no I/O, no clocks (`now` is a parameter). The state is a mutable record updated in place
 * for speed (15,000 VMs); "what if" checks work on copied node sums, never on the shared state.
 * @module
 */
import { add, equal, max, NO_OVERCOMMIT, type Res, sub, toNodeUnits, ZERO } from "./resources.ts";
import type { MigrationView, NodeInfo, PodInfo, VmView } from "./objects.ts";

/** Settings the accounting needs. */
export interface AccountingConfig {
  /** Fraction of allocatable above which VMs are migrated away. */
  readonly watermark: number;
  /** Namespaces whose pods count only when filtering new pods. */
  readonly ignoredNamespaces: ReadonlySet<string>;
  /** Pods with this schedulerName are ours. */
  readonly schedulerName: string;
}

/** Per-node sums, all in node units (after overcommit) except `committed`. */
export interface NodeSums {
  /** Σ reservations of counted pods. */
  reserved: Res;
  /** Σ reservations of pods in ignored namespaces (count for filtering only). */
  ignoredReserved: Res;
  /** Σ raw reservations (before overcommit). */
  committed: Res;
  /** Σ reservations of pods migrating away. */
  migrating: Res;
  /** Capacity pressure: Σ denied increases of pods not migrating. */
  capacityPressure: Res;
  /** Σ (reservation + denied increase) of pods migrating away. */
  accountedFor: Res;
}

/** A node's record. */
export interface NodeEntry {
  /** From the Node object; undefined while only pods name it. */
  info: NodeInfo | undefined;
  /** Running sums. */
  sums: NodeSums;
  /** UIDs of pods placed here (bound or being bound). */
  readonly pods: Set<string>;
}

/** What a pod currently adds to its node (kept to subtract it exactly later). */
export interface Contribution {
  /** Node name. */
  readonly node: string;
  /** Raw reservation. */
  readonly raw: Res;
  /** Node units. */
  readonly units: Res;
  /** Denied increase, node units. */
  readonly deniedUnits: Res;
  /** Counted as migrating away. */
  readonly migrating: boolean;
  /** In an ignored namespace. */
  readonly ignored: boolean;
}

/** A pod's record. */
export interface PodEntry {
  /** Parsed pod. */
  readonly info: PodInfo;
  /** `namespace/name` of its VirtualMachine (built once: the permit path looks it up per request). */
  readonly vmKey: string | undefined;
  /** Node being bound to by our extender before the watch shows `spec.nodeName`. */
  tentativeNode: string | undefined;
  /** What it adds now, if placed. */
  contribution: Contribution | undefined;
}

/** The latest decision the permit path made for a VM (may not be persisted yet). */
export interface Decision {
  /** Approved resources. */
  readonly approved: Res;
  /** Requested resources. */
  readonly requested: Res;
  /** The agent's compute unit. */
  readonly scalingUnit: Res;
  /** Part of the request that did not fit (capacity pressure), raw. */
  readonly denied: Res;
}

/** A VM's record. */
export interface VmEntry {
  /** From the VirtualMachine object, when seen. */
  view: VmView | undefined;
  /** Our latest decision, when any. */
  decision: Decision | undefined;
  /** UIDs of its runner pods (two during a migration). */
  readonly pods: Set<string>;
  /** Approved values of annotation writes queued or in flight (set by io). */
  readonly writing: Res[];
}

/** The whole accounting state. */
export interface ClusterState {
  /** Settings. */
  readonly config: AccountingConfig;
  /** Nodes by name. */
  readonly nodes: Map<string, NodeEntry>;
  /** Pods by UID. */
  readonly pods: Map<string, PodEntry>;
  /** Pod UID by `namespace/name`. */
  readonly podsByName: Map<string, string>;
  /** VMs by `namespace/name`. */
  readonly vms: Map<string, VmEntry>;
  /** Plugin-created migrations by `namespace/name`. */
  readonly migrations: Map<string, MigrationView>;
  /** Pods we decided to migrate → when (epoch ms); cleared when the pod goes or fails to move. */
  readonly requestedMigrations: Map<string, number>;
  /** Largest node totals seen (for scoring). */
  maxTotal: Res;
  /** True once the initial lists of every kind have been loaded. */
  synced: boolean;
}

/** `namespace/name`. */
export function key(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

/** The `namespace/name` of the VirtualMachine owning a pod, if any. */
export function vmKeyOf(info: PodInfo): string | undefined {
  return info.vm === undefined ? undefined : key(info.namespace, info.vm.vmName);
}

function emptySums(): NodeSums {
  return {
    reserved: ZERO,
    ignoredReserved: ZERO,
    committed: ZERO,
    migrating: ZERO,
    capacityPressure: ZERO,
    accountedFor: ZERO,
  };
}

/** An empty state. */
export function newClusterState(config: AccountingConfig): ClusterState {
  return {
    config,
    nodes: new Map(),
    pods: new Map(),
    podsByName: new Map(),
    vms: new Map(),
    migrations: new Map(),
    requestedMigrations: new Map(),
    maxTotal: ZERO,
    synced: false,
  };
}

function nodeEntry(state: ClusterState, name: string): NodeEntry {
  let n = state.nodes.get(name);
  if (n === undefined) {
    n = { info: undefined, sums: emptySums(), pods: new Set() };
    state.nodes.set(name, n);
  }
  return n;
}

function vmEntry(state: ClusterState, k: string): VmEntry {
  let v = state.vms.get(k);
  if (v === undefined) {
    v = { view: undefined, decision: undefined, pods: new Set(), writing: [] };
    state.vms.set(k, v);
  }
  return v;
}

/** The node a pod occupies: bound node, else the node our bind is placing it on. */
export function placedNode(p: PodEntry): string | undefined {
  if (p.info.terminal) return undefined;
  return p.info.nodeName ?? p.tentativeNode;
}

/** True when the VM of this pod has a migration in flight or requested by us. */
export function isMigrating(state: ClusterState, p: PodEntry): boolean {
  const vm = p.info.vm;
  if (vm === undefined) return false;
  if (vm.role === "source") return true;
  if (vm.role === "target") return false;
  if (state.requestedMigrations.has(p.info.uid)) return true;
  if (state.migrations.size === 0) return false; // the usual case; skips building the name
  const mig = state.migrations.get(key(p.info.namespace, `schedplugin-${p.info.name}`));
  return mig !== undefined && !isFinished(mig);
}

/** A migration that has ended. */
export function isFinished(m: MigrationView): boolean {
  return m.phase === "Succeeded" || m.phase === "Failed";
}

/** Raw reservation of a pod (see module comment for the VM rule). */
export function rawReservation(state: ClusterState, p: PodEntry): Res {
  const vm = p.info.vm;
  if (vm === undefined) return p.info.requests;
  const entry = state.vms.get(p.vmKey ?? key(p.info.namespace, vm.vmName));
  const view = entry?.view;
  // Field by field without intermediate objects: this runs on every permit request.
  let cpu: number;
  let mem: number;
  const specUse = view?.specUse;
  const actual = vm.actual;
  if (specUse !== undefined && actual !== undefined) {
    cpu = Math.max(0, specUse.cpu, actual.cpu);
    mem = Math.max(0, specUse.mem, actual.mem);
  } else if (specUse !== undefined || actual !== undefined) {
    const known = (specUse ?? actual)!;
    cpu = Math.max(0, known.cpu);
    mem = Math.max(0, known.mem);
  } else {
    // Without any size information fall back to the pod's own requests.
    cpu = p.info.requests.cpu;
    mem = p.info.requests.mem;
  }
  const annotated = view !== undefined ? view.approved : vm.podApproved;
  if (annotated !== undefined) {
    cpu = Math.max(cpu, annotated.cpu);
    mem = Math.max(mem, annotated.mem);
  }
  const decided = entry?.decision?.approved;
  if (decided !== undefined) {
    cpu = Math.max(cpu, decided.cpu);
    mem = Math.max(mem, decided.mem);
  }
  return { cpu, mem };
}

function computeContribution(state: ClusterState, p: PodEntry): Contribution | undefined {
  const node = placedNode(p);
  if (node === undefined) return undefined;
  const raw = rawReservation(state, p);
  const oc = p.info.vm?.overcommitMilli ?? NO_OVERCOMMIT;
  const units = toNodeUnits(raw, oc);
  const vm = p.info.vm;
  let deniedUnits = ZERO;
  if (vm !== undefined && vm.role !== "target") {
    const d = state.vms.get(p.vmKey ?? key(p.info.namespace, vm.vmName))?.decision?.denied;
    if (d !== undefined) deniedUnits = toNodeUnits(d, oc);
  }
  return {
    node,
    raw,
    units,
    deniedUnits,
    migrating: isMigrating(state, p),
    ignored: state.config.ignoredNamespaces.has(p.info.namespace),
  };
}

function applyContribution(sums: NodeSums, c: Contribution, sign: 1 | -1): NodeSums {
  const f = sign === 1 ? add : sub;
  if (c.ignored) return { ...sums, ignoredReserved: f(sums.ignoredReserved, c.units) };
  const out = { ...sums, reserved: f(sums.reserved, c.units), committed: f(sums.committed, c.raw) };
  if (c.migrating) {
    out.migrating = f(out.migrating, c.units);
    out.accountedFor = f(out.accountedFor, add(c.units, c.deniedUnits));
  } else {
    out.capacityPressure = f(out.capacityPressure, c.deniedUnits);
  }
  return out;
}

/** Recomputes one pod's contribution and moves its node sums accordingly. */
export function refreshPod(state: ClusterState, uid: string): void {
  const p = state.pods.get(uid);
  if (p === undefined) return;
  const old = p.contribution;
  const next = computeContribution(state, p);
  if (old !== undefined) {
    const n = nodeEntry(state, old.node);
    n.sums = applyContribution(n.sums, old, -1);
    n.pods.delete(uid);
  }
  if (next !== undefined) {
    const n = nodeEntry(state, next.node);
    n.sums = applyContribution(n.sums, next, 1);
    n.pods.add(uid);
  }
  p.contribution = next;
}

/** Recomputes every pod of a VM. */
export function refreshVm(state: ClusterState, vmKey: string): void {
  const v = state.vms.get(vmKey);
  if (v === undefined) return;
  for (const uid of v.pods) refreshPod(state, uid);
}

/** Adds or replaces a node. */
export function upsertNode(state: ClusterState, info: NodeInfo): void {
  nodeEntry(state, info.name).info = info;
  state.maxTotal = max(state.maxTotal, info.total);
}

/** Removes a node; pods naming it keep their records and count again if it returns. */
export function deleteNode(state: ClusterState, name: string): void {
  const n = state.nodes.get(name);
  if (n === undefined) return;
  n.info = undefined;
  if (n.pods.size === 0) state.nodes.delete(name);
}

/** Adds or replaces a pod. A tentative placement ends once the pod shows a node. */
export function upsertPod(state: ClusterState, info: PodInfo): void {
  const existing = state.pods.get(info.uid);
  const tentativeNode = info.nodeName === undefined ? existing?.tentativeNode : undefined;
  if (existing !== undefined && existing.info.vm !== undefined) {
    const oldVm = key(existing.info.namespace, existing.info.vm.vmName);
    if (info.vm === undefined || key(info.namespace, info.vm.vmName) !== oldVm) {
      state.vms.get(oldVm)?.pods.delete(info.uid);
    }
  }
  const entry: PodEntry = {
    info,
    vmKey: vmKeyOf(info),
    tentativeNode,
    contribution: existing?.contribution,
  };
  state.pods.set(info.uid, entry);
  state.podsByName.set(key(info.namespace, info.name), info.uid);
  if (info.vm !== undefined) vmEntry(state, key(info.namespace, info.vm.vmName)).pods.add(info.uid);
  refreshPod(state, info.uid);
}

/** Removes a pod and everything tied to it. */
export function deletePod(state: ClusterState, uid: string): void {
  const p = state.pods.get(uid);
  if (p === undefined) return;
  if (p.contribution !== undefined) {
    const n = nodeEntry(state, p.contribution.node);
    n.sums = applyContribution(n.sums, p.contribution, -1);
    n.pods.delete(uid);
    if (n.info === undefined && n.pods.size === 0) state.nodes.delete(p.contribution.node);
  }
  state.pods.delete(uid);
  const nameKey = key(p.info.namespace, p.info.name);
  if (state.podsByName.get(nameKey) === uid) state.podsByName.delete(nameKey);
  state.requestedMigrations.delete(uid);
  if (p.info.vm !== undefined) {
    const vk = key(p.info.namespace, p.info.vm.vmName);
    const v = state.vms.get(vk);
    v?.pods.delete(uid);
    if (v !== undefined && v.view === undefined && v.pods.size === 0 && v.writing.length === 0) {
      state.vms.delete(vk);
    }
  }
}

/** Adds or replaces a VirtualMachine view. */
export function upsertVm(state: ClusterState, view: VmView): void {
  const k = key(view.namespace, view.name);
  const v = vmEntry(state, k);
  if (v.view !== undefined && v.view.uid !== view.uid) v.decision = undefined; // recreated VM
  v.view = view;
  refreshVm(state, k);
}

/** Removes a VirtualMachine; its pods fall back to their own annotations. */
export function deleteVm(state: ClusterState, namespace: string, name: string): void {
  const k = key(namespace, name);
  const v = state.vms.get(k);
  if (v === undefined) return;
  v.view = undefined;
  v.decision = undefined;
  refreshVm(state, k);
  if (v.pods.size === 0 && v.writing.length === 0) state.vms.delete(k);
}

/** Records a decision of the permit path and recounts the VM's pods. */
export function setDecision(state: ClusterState, vmKey: string, d: Decision): void {
  vmEntry(state, vmKey).decision = d;
  refreshVm(state, vmKey);
}

/** Notes that an annotation write carrying `approved` is queued or in flight (io calls this). */
export function beginWrite(state: ClusterState, vmKey: string, approved: Res): void {
  vmEntry(state, vmKey).writing.push(approved);
}

/** Notes that a write begun with {@linkcode beginWrite} finished (either way). */
export function endWrite(state: ClusterState, vmKey: string, approved: Res): void {
  const v = state.vms.get(vmKey);
  if (v === undefined) return;
  const i = v.writing.indexOf(approved);
  if (i >= 0) v.writing.splice(i, 1);
}

/** Adds or replaces a plugin-created migration. */
export function upsertMigration(state: ClusterState, m: MigrationView): void {
  state.migrations.set(key(m.namespace, m.name), m);
  refreshMigrationPods(state, m);
}

/** Removes a plugin-created migration. */
export function deleteMigration(state: ClusterState, namespace: string, name: string): void {
  const m = state.migrations.get(key(namespace, name));
  state.migrations.delete(key(namespace, name));
  if (m !== undefined) refreshMigrationPods(state, m);
}

function refreshMigrationPods(state: ClusterState, m: MigrationView): void {
  const v = state.vms.get(key(m.namespace, m.vmName));
  if (v === undefined) return;
  for (const uid of v.pods) {
    // A finished migration releases the request so a pod still here may be chosen again later.
    if (isFinished(m)) state.requestedMigrations.delete(uid);
    refreshPod(state, uid);
  }
}

/** Marks a pod as chosen for migration (or unmarks it when creating the migration failed). */
export function setMigrationRequested(
  state: ClusterState,
  uid: string,
  requested: boolean,
  now: number,
): void {
  if (requested) state.requestedMigrations.set(uid, now);
  else state.requestedMigrations.delete(uid);
  refreshPod(state, uid);
}

/** Marks the tentative placement of a pod our bind is binding; undefined clears it. */
export function setTentativeNode(
  state: ClusterState,
  info: PodInfo,
  node: string | undefined,
): void {
  const existing = state.pods.get(info.uid);
  if (existing === undefined) {
    upsertPod(state, info);
  }
  const p = state.pods.get(info.uid);
  if (p === undefined) return;
  p.tentativeNode = node;
  refreshPod(state, info.uid);
}

/** Room left for counted pods on a node, node units (never negative). */
export function freeUnits(n: NodeEntry): Res {
  const total = n.info?.total ?? ZERO;
  return {
    cpu: Math.max(0, total.cpu - n.sums.reserved.cpu),
    mem: Math.max(0, total.mem - n.sums.reserved.mem),
  };
}

/** Recomputes every sum from scratch (for tests and consistency checks). */
export function recomputeSums(state: ClusterState): Map<string, NodeSums> {
  const out = new Map<string, NodeSums>();
  for (const p of state.pods.values()) {
    const c = computeContribution(state, p);
    if (c === undefined) continue;
    out.set(c.node, applyContribution(out.get(c.node) ?? emptySums(), c, 1));
  }
  return out;
}

/** True when two sums are equal field by field. */
export function sumsEqual(a: NodeSums, b: NodeSums): boolean {
  return equal(a.reserved, b.reserved) && equal(a.ignoredReserved, b.ignoredReserved) &&
    equal(a.committed, b.committed) && equal(a.migrating, b.migrating) &&
    equal(a.capacityPressure, b.capacityPressure) && equal(a.accountedFor, b.accountedFor);
}
