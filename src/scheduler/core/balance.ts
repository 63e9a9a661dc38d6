/**
 * Which VMs to migrate off a node (D3, the seed's pressure semantics): per resource, logical
 * pressure (reservations above the watermark) plus capacity pressure (increases denied for lack of
 * room) beyond what migrations already in flight account for starts more migrations, choosing the
 * oldest eligible VM first, skipping VMs too big to help, and stopping as soon as the pressure is
 * accounted for. The reference HEAD only compares `Reserved − Migrating` with the watermark and
 * ignores denied requests; we follow the seed on purpose.
 * Pure: no I/O, no clocks; `planMigrations` works on a copy of the node's sums.
 * @module
 */
import { add, anyPositive, excess, type Res } from "./resources.ts";
import { type ClusterState, isMigrating, setMigrationRequested } from "./state.ts";

/** Pressure figures of one node, node units. */
export interface Pressure {
  /** `max(0, reserved − watermark)`. */
  readonly logical: Res;
  /** Denied increases of pods not migrating. */
  readonly capacity: Res;
  /** Σ (reservation + denied) of pods migrating away. */
  readonly accountedFor: Res;
  /** `max(0, logical + capacity − accountedFor)`: what new migrations must cover. */
  readonly unaccounted: Res;
}

/** Computes a node's pressure; undefined for unknown nodes. */
export function nodePressure(state: ClusterState, node: string): Pressure | undefined {
  const n = state.nodes.get(node);
  if (n?.info === undefined) return undefined;
  const logical = excess(n.sums.reserved, n.info.watermark);
  const capacity = n.sums.capacityPressure;
  const accountedFor = n.sums.accountedFor;
  return {
    logical,
    capacity,
    accountedFor,
    unaccounted: excess(add(logical, capacity), accountedFor),
  };
}

/** A VM pod chosen for migration. */
export interface MigrationChoice {
  /** Pod UID. */
  readonly podUid: string;
  /** Pod namespace. */
  readonly namespace: string;
  /** Pod name (the migration is named `schedplugin-<podName>`). */
  readonly podName: string;
  /** VM name. */
  readonly vmName: string;
  /** Node it leaves. */
  readonly node: string;
}

/**
 * Chooses VMs to migrate off `node` without changing the state: oldest first, only pods whose
 * labels allow it and which are not already moving, skipping a VM whose reservation exceeds the
 * node's watermark on either resource (it would push any similar node over too) or which holds
 * none of a resource under pressure; stops when nothing is left unaccounted.
 */
export function planMigrations(
  state: ClusterState,
  node: string,
  allowNamespace: (namespace: string) => boolean = () => true,
): MigrationChoice[] {
  const n = state.nodes.get(node);
  const p = nodePressure(state, node);
  if (n?.info === undefined || p === undefined || !anyPositive(p.unaccounted)) return [];
  const candidates = [...n.pods]
    .map((uid) => state.pods.get(uid))
    .filter((e) => e !== undefined)
    .filter((e) =>
      e.info.vm !== undefined && e.info.vm.migrationAllowed && e.info.vm.role === "none" &&
      e.info.nodeName === node && !isMigrating(state, e) && e.contribution !== undefined &&
      !e.contribution.ignored && allowNamespace(e.info.namespace)
    )
    .sort((a, b) =>
      a.info.createdAtMs - b.info.createdAtMs || a.info.name.localeCompare(b.info.name)
    );
  let need = p.unaccounted;
  const chosen: MigrationChoice[] = [];
  const watermark = n.info.watermark;
  for (const e of candidates) {
    if (!anyPositive(need)) break;
    const c = e.contribution!;
    if (c.units.cpu > watermark.cpu || c.units.mem > watermark.mem) continue; // too big to help
    const helps = (need.cpu > 0 && c.units.cpu > 0) || (need.mem > 0 && c.units.mem > 0);
    if (!helps) continue;
    need = excess(need, add(c.units, c.deniedUnits));
    chosen.push({
      podUid: e.info.uid,
      namespace: e.info.namespace,
      podName: e.info.name,
      vmName: e.info.vm!.vmName,
      node,
    });
  }
  return chosen;
}

/** Plans migrations for `node` and marks the chosen pods as requested (they count as moving). */
export function startMigrations(
  state: ClusterState,
  node: string,
  now: number,
  allowNamespace?: (namespace: string) => boolean,
): MigrationChoice[] {
  const chosen = planMigrations(state, node, allowNamespace);
  for (const c of chosen) setMigrationRequested(state, c.podUid, true, now);
  return chosen;
}
