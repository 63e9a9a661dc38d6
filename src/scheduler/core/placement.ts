/**
 * Placing new pods (the extender's filter, prioritize and bind, reference §4.4): a pod fits a
 * node when the node's reservations, including pods in ignored namespaces, plus the pod's stay
 * within allocatable; scores follow the reference's peak curve; bind re-checks the fit on the
 * current state and records the placement before the Binding is created.
 * Pure: no I/O, no clocks; randomness comes in as a function. Checks work on copies of node sums.
 * @module
 */
import type { ScoringConfig } from "../../api/scheduler_config.ts";
import type { PodInfo } from "./objects.ts";
import { add, fitsIn, NO_OVERCOMMIT, type Res, toNodeUnits } from "./resources.ts";
import {
  type ClusterState,
  type NodeEntry,
  placedNode,
  type PodEntry,
  rawReservation,
  setTentativeNode,
  vmKeyOf,
} from "./state.ts";

/** Result of checking one node. */
export type FitResult = { fits: true; used: Res; total: Res } | { fits: false; reason: string };

/** What a new pod would add to a node, in node units. */
export function podUnits(state: ClusterState, info: PodInfo): Res {
  const probe: PodEntry = {
    info,
    vmKey: vmKeyOf(info),
    tentativeNode: undefined,
    contribution: undefined,
  };
  const raw = rawReservation(state, probe);
  return toNodeUnits(raw, info.vm?.overcommitMilli ?? NO_OVERCOMMIT);
}

function fmtCpu(m: number): string {
  return m % 1000 === 0 ? String(m / 1000) : `${m}m`;
}

function fmtMem(b: number): string {
  const mi = b / (1024 * 1024);
  return Number.isInteger(mi) ? `${mi}Mi` : `${b}`;
}

/** Checks whether `info` fits `node` (excluding any place it already holds there). */
export function checkFit(
  state: ClusterState,
  node: string,
  info: PodInfo,
  need: Res = podUnits(state, info),
): FitResult {
  const n: NodeEntry | undefined = state.nodes.get(node);
  if (n?.info === undefined) {
    return { fits: false, reason: "node is not known to autoscale-scheduler" };
  }
  let used = add(n.sums.reserved, n.sums.ignoredReserved);
  const existing = state.pods.get(info.uid);
  if (existing?.contribution !== undefined && existing.contribution.node === node) {
    used = {
      cpu: used.cpu - existing.contribution.units.cpu,
      mem: used.mem - existing.contribution.units.mem,
    };
  }
  const after = add(used, need);
  const total = n.info.total;
  if (fitsIn(after, total)) return { fits: true, used: after, total };
  const parts: string[] = [];
  if (after.cpu > total.cpu) {
    parts.push(
      `cpu: pod needs ${fmtCpu(need.cpu)}, ${fmtCpu(Math.max(0, total.cpu - used.cpu))} of ${
        fmtCpu(total.cpu)
      } free`,
    );
  }
  if (after.mem > total.mem) {
    parts.push(
      `memory: pod needs ${fmtMem(need.mem)}, ${fmtMem(Math.max(0, total.mem - used.mem))} of ${
        fmtMem(total.mem)
      } free`,
    );
  }
  return { fits: false, reason: `autoscale-scheduler: not enough resources (${parts.join("; ")})` };
}

/** Filter: splits node names into those that fit and failures with reasons. */
export function filterNodes(
  state: ClusterState,
  info: PodInfo,
  nodeNames: readonly string[],
): { fit: string[]; failed: Record<string, string> } {
  const fit: string[] = [];
  const failed: Record<string, string> = {};
  const need = podUnits(state, info);
  for (const name of nodeNames) {
    const r = checkFit(state, name, info, need);
    if (r.fits) fit.push(name);
    else failed[name] = r.reason;
  }
  return { fit, failed };
}

/** The reference's usage curve: y0 at 0, 1 at the peak, y1 at 1. */
export function usageScore(fraction: number, cfg: ScoringConfig): number {
  const xp = cfg.scorePeak;
  const f = Math.min(1, Math.max(0, fraction));
  if (f === xp) return 1;
  if (f < xp) return cfg.minUsageScore + ((1 - cfg.minUsageScore) / xp) * f;
  return cfg.maxUsageScore + ((1 - cfg.maxUsageScore) / (1 - xp)) * (1 - f);
}

/** Score of one node for a pod, 0..`maxScore` (0 when it does not fit). */
export function scoreNode(
  state: ClusterState,
  node: string,
  info: PodInfo,
  cfg: ScoringConfig,
  maxScore: number,
  need: Res = podUnits(state, info),
): number {
  const r = checkFit(state, node, info, need);
  if (!r.fits) return 0;
  const part = (used: number, total: number, maxTotal: number): number => {
    if (total <= 0 || maxTotal <= 0) return 0;
    return usageScore(used / total, cfg) * (total / maxTotal);
  };
  const cpu = part(r.used.cpu, r.total.cpu, state.maxTotal.cpu);
  const mem = part(r.used.mem, r.total.mem, state.maxTotal.mem);
  return Math.max(0, Math.min(maxScore, Math.floor(maxScore * Math.min(cpu, mem))));
}

/**
 * Prioritize: scores every node; with `randomize`, each non-zero score s becomes a uniform integer
 * in [1, s] drawn with `random` (a function returning [0, 1)).
 */
export function prioritize(
  state: ClusterState,
  info: PodInfo,
  nodeNames: readonly string[],
  cfg: ScoringConfig,
  maxScore: number,
  random: () => number,
): { host: string; score: number }[] {
  const need = podUnits(state, info);
  return nodeNames.map((host) => {
    let score = scoreNode(state, host, info, cfg, maxScore, need);
    if (cfg.randomize && score > 0) score = 1 + Math.floor(random() * score);
    return { host, score };
  });
}

/** Outcome of {@linkcode reserveForBind}. */
export type BindReservation = { ok: true } | { ok: false; reason: string };

/**
 * Bind, step one: re-checks the fit against the current state (other pods may have been placed
 * since filter) and records the pod on the node. Unlike the reference's Reserve, which never
 * fails, a pod that no longer fits is refused here so the scheduler tries again.
 */
export function reserveForBind(state: ClusterState, info: PodInfo, node: string): BindReservation {
  const existing = state.pods.get(info.uid);
  if (existing !== undefined) {
    const at = placedNode(existing);
    // A pod bound elsewhere cannot move; an earlier bind attempt whose outcome is unknown only
    // left a tentative placement, which this bind replaces.
    if (at !== undefined && at !== node && existing.info.nodeName !== undefined) {
      return { ok: false, reason: `pod is already placed on node ${at}` };
    }
  }
  const r = checkFit(state, node, info);
  if (!r.fits) return { ok: false, reason: r.reason };
  setTentativeNode(state, info, node);
  return { ok: true };
}

/** Bind, on failure to create the Binding: forgets the tentative placement. */
export function releaseBind(state: ClusterState, info: PodInfo): void {
  const p = state.pods.get(info.uid);
  if (p === undefined || p.info.nodeName !== undefined) return;
  setTentativeNode(state, p.info, undefined);
}
