/**
 * The demo's recorded timeline and what it says: points of VM state and guest metrics over time,
 * conversion to the rendered samples, and reaction times (from a load step's start to the agent's
 * patch of `spec`, and to the guest having the new resources in `status`). Pure: no I/O.
 * @module
 */
import type { Sample } from "./render.ts";

/** One recorded moment. */
export interface Point {
  /** Seconds since recording started. */
  tSec: number;
  /** Demo stage at that moment. */
  stage: string;
  /** Guest 1-minute load average. */
  loadAvg1m: number | undefined;
  /** Guest memory in use (total − available + 100 MiB, as the agent counts it), bytes. */
  memUsedBytes: number | undefined;
  /** spec CPU (the agent's patch), MilliCPU. */
  cpuUseMilli: number;
  /** spec memory, bytes. */
  memUseBytes: number;
  /** status.cpus, MilliCPU. */
  cpuStatusMilli: number | undefined;
  /** status.memorySize, bytes. */
  memStatusBytes: number | undefined;
}

/** Points as the renderer's samples (allocated = what the guest has, else what spec asks). */
export function toSamples(points: readonly Point[]): Sample[] {
  return points.map((p) => ({
    tSec: p.tSec,
    stage: p.stage,
    loadAvg1m: p.loadAvg1m,
    memUsedBytes: p.memUsedBytes,
    cpuMilli: p.cpuStatusMilli ?? p.cpuUseMilli,
    memBytes: p.memStatusBytes ?? p.memUseBytes,
  }));
}

/** How fast the VM reacted to one stage. */
export interface Reaction {
  /** Stage name. */
  stage: string;
  /** `up` when the stage adds load, `down` when it removes it. */
  direction: "up" | "down";
  /** Which resource moved first in that direction. */
  resource: "cpu" | "memory" | "none";
  /** Seconds from the stage start to the first spec change in that direction. */
  patchSec: number | undefined;
  /** Seconds from the stage start to the first status change in that direction. */
  guestSec: number | undefined;
  /** Seconds from the stage start until spec reached `target` (if given). */
  targetSec: number | undefined;
}

/**
 * Reaction of the stage starting at the first point named `stage`: the first later point (in that
 * stage or after) whose spec/status CPU or memory moved in `direction` from the values at the
 * stage start. `target` (optional) is a CPU value whose reaching is timed too.
 */
export function reactionOf(
  points: readonly Point[],
  stage: string,
  direction: "up" | "down",
  targetCpuMilli?: number,
): Reaction | undefined {
  const i0 = points.findIndex((p) => p.stage === stage);
  if (i0 < 0) return undefined;
  const p0 = points[i0]!;
  const moved = (a: number | undefined, b: number | undefined) =>
    a !== undefined && b !== undefined && (direction === "up" ? a > b : a < b);
  let patchSec: number | undefined;
  let guestSec: number | undefined;
  let targetSec: number | undefined;
  let resource: Reaction["resource"] = "none";
  for (const p of points.slice(i0 + 1)) {
    const dt = p.tSec - p0.tSec;
    if (patchSec === undefined) {
      if (moved(p.cpuUseMilli, p0.cpuUseMilli)) [patchSec, resource] = [dt, "cpu"];
      else if (moved(p.memUseBytes, p0.memUseBytes)) [patchSec, resource] = [dt, "memory"];
    }
    if (
      guestSec === undefined &&
      (moved(p.cpuStatusMilli, p0.cpuStatusMilli) || moved(p.memStatusBytes, p0.memStatusBytes))
    ) guestSec = dt;
    if (
      targetSec === undefined && targetCpuMilli !== undefined && p.cpuUseMilli === targetCpuMilli
    ) {
      targetSec = dt;
    }
  }
  return { stage, direction, resource, patchSec, guestSec, targetSec };
}

/** p-th percentile (0..100) by nearest rank; undefined for no values. */
export function percentile(values: readonly number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const s = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * s.length);
  return s[Math.min(s.length - 1, Math.max(0, rank - 1))];
}

/** Load-step kinds of the reaction benchmark. */
export type StepKind = "cpu" | "memory";

/** The VM object as a watch delivered it, at `tMs` (epoch ms when received). */
export interface VmObservation {
  /** Epoch milliseconds when this state was received. */
  tMs: number;
  /** Phase. */
  phase: string;
  /** spec CPU (the agent's patch), MilliCPU. */
  cpuUseMilli: number;
  /** spec memory, bytes. */
  memUseBytes: number;
  /** status.cpus (what the runner reports the guest has), MilliCPU. */
  cpuStatusMilli: number | undefined;
  /** status.memorySize, bytes. */
  memStatusBytes: number | undefined;
  /** Scheduler's record of the agent's last request (resources-requested annotation), MilliCPU. */
  cpuRequestedMilli: number | undefined;
  /** Same for memory, bytes. */
  memRequestedBytes: number | undefined;
  /** Scheduler-approved CPU (resources-approved annotation), MilliCPU. */
  cpuApprovedMilli: number | undefined;
  /** Scheduler-approved memory, bytes. */
  memApprovedBytes: number | undefined;
}

/** One scrape of the guest's own metrics exporter, at `tMs` (epoch ms). */
export interface GuestObservation {
  /** Epoch milliseconds when the scrape answered. */
  tMs: number;
  /** CPUs online in the guest (CPUs listed by the exporter's cpu collector). */
  onlineCpus: number | undefined;
  /** MemTotal as the guest sees it, bytes. */
  memTotalBytes: number | undefined;
  /** 1-minute load average. */
  load1: number | undefined;
  /** Whether the agent's goal formula, on this scrape, asks for more of the step's resource. */
  wantsMore: boolean;
}

/** Seconds from a load step's start to each observed stage of the reaction (undefined: none). */
export interface StepTimes {
  /** Load kind. */
  kind: StepKind;
  /** spec value at the start (MilliCPU or bytes). */
  fromValue: number;
  /** Value of the first increase patched (MilliCPU or bytes), if any. */
  toValue: number | undefined;
  /** First guest scrape on which the agent's formula asks for more. */
  signalSec: number | undefined;
  /** The scheduler recorded a larger request from the agent on the VM. */
  requestSec: number | undefined;
  /** The scheduler recorded a larger approval on the VM. */
  approvedSec: number | undefined;
  /** The agent's patch of `spec` arrived (first increase). */
  patchSec: number | undefined;
  /** `status` (from the runner) shows more. */
  statusSec: number | undefined;
  /** The guest itself shows more (online CPUs or MemTotal). */
  guestSec: number | undefined;
}

function pick(kind: StepKind, o: VmObservation) {
  return kind === "cpu"
    ? {
      use: o.cpuUseMilli,
      status: o.cpuStatusMilli,
      requested: o.cpuRequestedMilli,
      approved: o.cpuApprovedMilli,
    }
    : {
      use: o.memUseBytes,
      status: o.memStatusBytes,
      requested: o.memRequestedBytes,
      approved: o.memApprovedBytes,
    };
}

/**
 * Times one load step that started at `t0Ms` with the VM in state `base` and the guest in
 * `baseGuest`, from the VM states and guest scrapes observed afterwards (earlier ones are
 * ignored). An annotation counts once it changes to more than the spec value at the start; the
 * guest counts once it shows more CPUs online (CPU) or a larger MemTotal (memory) than at the start.
 */
export function stepTimes(
  kind: StepKind,
  t0Ms: number,
  base: VmObservation,
  baseGuest: GuestObservation | undefined,
  vm: readonly VmObservation[],
  guest: readonly GuestObservation[],
): StepTimes {
  const b = pick(kind, base);
  const sec = (tMs: number) => Math.max(0, tMs - t0Ms) / 1000;
  const out: StepTimes = {
    kind,
    fromValue: b.use,
    toValue: undefined,
    signalSec: undefined,
    requestSec: undefined,
    approvedSec: undefined,
    patchSec: undefined,
    statusSec: undefined,
    guestSec: undefined,
  };
  let prev = b;
  for (const o of vm) {
    if (o.tMs < t0Ms) continue;
    const v = pick(kind, o);
    const grew = (x: number | undefined, before: number | undefined) =>
      x !== undefined && x > b.use && x !== before;
    if (out.requestSec === undefined && grew(v.requested, prev.requested)) {
      out.requestSec = sec(o.tMs);
    }
    if (out.approvedSec === undefined && grew(v.approved, prev.approved)) {
      out.approvedSec = sec(o.tMs);
    }
    if (out.patchSec === undefined && v.use > b.use) {
      [out.patchSec, out.toValue] = [sec(o.tMs), v.use];
    }
    if (out.statusSec === undefined && v.status !== undefined && v.status > (b.status ?? b.use)) {
      out.statusSec = sec(o.tMs);
    }
    prev = v;
  }
  for (const g of guest) {
    if (g.tMs < t0Ms) continue;
    if (out.signalSec === undefined && g.wantsMore) out.signalSec = sec(g.tMs);
    if (out.guestSec === undefined && baseGuest !== undefined) {
      const more = kind === "cpu"
        ? g.onlineCpus !== undefined && baseGuest.onlineCpus !== undefined &&
          g.onlineCpus > baseGuest.onlineCpus
        : g.memTotalBytes !== undefined && baseGuest.memTotalBytes !== undefined &&
          g.memTotalBytes > baseGuest.memTotalBytes;
      if (more) out.guestSec = sec(g.tMs);
    }
  }
  return out;
}

/** p50/p95 of one measured interval over the steps that have it. */
export interface IntervalSummary {
  /** What is measured. */
  label: string;
  /** Steps with a value. */
  n: number;
  /** Steps without one. */
  missing: number;
  /** Median, seconds. */
  p50: number | undefined;
  /** 95th percentile, seconds. */
  p95: number | undefined;
}

/** Summarises `value(step)` over `steps` (undefined values count as missing). */
export function summarise(
  label: string,
  steps: readonly StepTimes[],
  value: (s: StepTimes) => number | undefined,
): IntervalSummary {
  const vs = steps.map(value).filter((v): v is number => v !== undefined && Number.isFinite(v));
  return {
    label,
    n: vs.length,
    missing: steps.length - vs.length,
    p50: percentile(vs, 50),
    p95: percentile(vs, 95),
  };
}

/** Difference `b − a` when both exist. */
export function between(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined ? undefined : b - a;
}

/** How to load a guest with memory: `parallel` queries holding `mib` MiB each. */
export interface PressurePlan {
  /** Queries at once. */
  parallel: number;
  /** MiB each query holds (at most 900: Postgres caps one value at 1 GiB). */
  mib: number;
}

/**
 * Memory queries that raise the agent's measure of memory in use (total − available + 100 MiB,
 * `usageBytes` now) to `overMib` MiB above its scale-up point, `fractionTarget` × the VM's
 * `memUseBytes` (at least 128 MiB in all).
 */
export function pressurePlan(
  memUseBytes: number,
  usageBytes: number,
  fractionTarget: number,
  overMib: number,
): PressurePlan {
  const MiB = 1024 * 1024;
  const totalMib = Math.max(
    128,
    Math.round((fractionTarget * memUseBytes + overMib * MiB - usageBytes) / MiB),
  );
  const parallel = Math.ceil(totalMib / 900);
  return { parallel, mib: Math.ceil(totalMib / parallel) };
}
