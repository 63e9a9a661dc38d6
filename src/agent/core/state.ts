/**
 * The autoscaler-agent's per-VM decision core (reference §3.4, §3.5): plain state, events that
 * return a new state, and `decide(state, now)` which returns the next actions (scheduler permit
 * request, NeonVM patch, monitor upscale/downscale) and how long to wait before deciding again.
 * Executors in io/ perform the actions and feed results back as events.
 * Pure: no I/O, no clocks, no randomness (jitter comes in as a parameter); never logs.
 * @module
 */
import type { AgentConfig, ScalingConfig, ScalingConfigOverrides } from "../../api/agent_config.ts";
import { withOverrides } from "../../api/agent_config.ts";
import type { Resources } from "../../api/quantity.ts";
import {
  nextRevision,
  type Revision,
  REVISION_FLAG_DOWNSCALE,
  REVISION_FLAG_UPSCALE,
  ZERO_REVISION,
} from "../../api/revision.ts";
import { computeGoalCu, type GoalCu } from "./goal_cu.ts";
import type { LfcMetrics, SystemMetrics } from "./metrics.ts";
import {
  addRes,
  clamp,
  eqRes,
  hasFieldGreater,
  hasFieldLess,
  maxRes,
  minRes,
  mulRes,
  saturatingSub,
} from "./resources.ts";

/** Timings and units the core needs, in milliseconds and decoded units. */
export interface CoreConfig {
  /** The compute unit. */
  readonly computeUnit: Resources;
  /** Agent-wide default scaling knobs. */
  readonly defaultScaling: ScalingConfig;
  /** Periodic permit request interval (`requestAtLeastEverySeconds`). */
  readonly pluginRequestTickMs: number;
  /** Wait after a failed permit request. */
  readonly pluginRetryWaitMs: number;
  /** Wait before re-asking after a denied or partial permit. */
  readonly pluginDeniedRetryWaitMs: number;
  /** How long a denied downscale holds the VM up. */
  readonly monitorDeniedDownscaleCooldownMs: number;
  /** How long a monitor upscale request stays in effect. */
  readonly monitorRequestedUpscaleValidMs: number;
  /** Wait after a failed monitor request. */
  readonly monitorRetryWaitMs: number;
  /** Wait after a failed NeonVM patch. */
  readonly neonvmRetryWaitMs: number;
  /** System metrics older than this are treated as absent. */
  readonly systemMetricsMaxAgeMs: number;
  /** LFC metrics older than this are treated as absent. */
  readonly lfcMetricsMaxAgeMs: number;
  /** Downscale stabilization window (our extension, 0 = the reference); see {@linkcode State}. */
  readonly downscaleStabilizationMs: number;
}

/** Derives the core's view of the agent config. */
export function coreConfigFrom(cfg: AgentConfig): CoreConfig {
  const s = (x: number) => Math.round(x * 1000);
  const sys = cfg.metrics.system;
  const lfc = cfg.metrics.lfc;
  return {
    computeUnit: cfg.scaling.computeUnit,
    defaultScaling: cfg.scaling.defaultConfig,
    pluginRequestTickMs: s(cfg.scheduler.requestAtLeastEverySeconds),
    pluginRetryWaitMs: s(cfg.scheduler.retryFailedRequestSeconds),
    pluginDeniedRetryWaitMs: s(cfg.scheduler.retryDeniedUpscaleSeconds),
    monitorDeniedDownscaleCooldownMs: s(cfg.monitor.retryDeniedDownscaleSeconds),
    monitorRequestedUpscaleValidMs: s(cfg.monitor.requestedUpscaleValidSeconds),
    monitorRetryWaitMs: s(cfg.monitor.retryFailedRequestSeconds),
    neonvmRetryWaitMs: s(cfg.neonvm.retryFailedRequestSeconds),
    // Why (fix of a reference quirk): the reference keeps the last metrics forever when the
    // exporter goes away and keeps scaling on them. Three missed scrapes make them absent here,
    // which stops downscaling (§3.4 step 5) until fresh metrics arrive.
    systemMetricsMaxAgeMs: s(3 * sys.secondsBetweenRequests + sys.requestTimeoutSeconds),
    lfcMetricsMaxAgeMs: s(3 * lfc.secondsBetweenRequests + lfc.requestTimeoutSeconds),
    downscaleStabilizationMs: s(cfg.scaling.downscaleStabilizationSeconds),
  };
}

/** What the agent knows about the VM from its object (spec, bounds and config annotations). */
export interface VmInfo {
  /** VM namespace. */
  readonly namespace: string;
  /** VM name. */
  readonly name: string;
  /** CPU bounds and spec use, MilliCPU (bounds annotation already applied). */
  readonly cpu: { readonly min: number; readonly max: number; readonly use: number };
  /** Memory bounds and spec use, bytes (bounds annotation already applied). */
  readonly mem: { readonly min: number; readonly max: number; readonly use: number };
  /** Memory slot size, bytes; memory patches are whole slots. */
  readonly slotSizeBytes: number;
  /** Per-VM overrides from the `autoscaling.neon.tech/config` annotation. */
  readonly config: ScalingConfigOverrides | undefined;
  /** `status.currentRevision.revision`, when set. */
  readonly currentRevision: Revision | undefined;
}

/** Scheduler-plugin side of the state. */
export interface PluginState {
  /** Bumped when the scheduler changes; results from older generations are ignored. */
  readonly generation: number;
  /** The request in flight. */
  readonly ongoing:
    | { readonly requested: Resources; readonly targetRevision: Revision }
    | undefined;
  /** The last request started. */
  readonly lastRequest: { readonly atMs: number; readonly resources: Resources } | undefined;
  /** When the last request failed, if the last outcome was a failure. */
  readonly lastFailureAtMs: number | undefined;
  /** The last permit received. */
  readonly permit: Resources | undefined;
  /** Target revision carried by the last successful request. */
  readonly currentRevision: Revision;
  /** Jitter subtracted from the periodic interval (drawn by io per request, [0, 100) ms). */
  readonly jitterMs: number;
  /** The scheduler said the VM is about to be migrated: no more upscaling patches. */
  readonly migrating: boolean;
}

/** A monitor `UpscaleRequest` being honoured. */
export interface RequestedUpscale {
  /** When it arrived. */
  readonly atMs: number;
  /** Monitor-approved resources at that time. */
  readonly base: Resources;
  /** When the monitor was told of memory above `base` (the request was met). */
  readonly satisfiedAtMs: number | undefined;
}

/** A monitor downscale denial being honoured. */
export interface DeniedDownscale {
  /** When it was denied. */
  readonly atMs: number;
  /** Monitor-approved resources when asked. */
  readonly current: Resources;
  /** What was asked for. */
  readonly requested: Resources;
}

/** vm-monitor side of the state. */
export interface MonitorState {
  /** Bumped on every connect and disconnect; results from older generations are ignored. */
  readonly generation: number;
  /** What the monitor last approved; undefined while there is no connection. */
  readonly approved: Resources | undefined;
  /** The request in flight. */
  readonly ongoing:
    | {
      readonly kind: "upscale" | "downscale";
      readonly requested: Resources;
      readonly targetRevision: Revision;
    }
    | undefined;
  /** An urgent upscale request from the monitor. */
  readonly requestedUpscale: RequestedUpscale | undefined;
  /** The last denied downscale. */
  readonly deniedDownscale: DeniedDownscale | undefined;
  /** When the last upscale notification failed. */
  readonly upscaleFailureAtMs: number | undefined;
  /** When the last downscale request failed. */
  readonly downscaleFailureAtMs: number | undefined;
  /** Target revision carried by the last successful request. */
  readonly currentRevision: Revision;
}

/** NeonVM side of the state. */
export interface NeonVmState {
  /** Target of the patch in flight. */
  readonly ongoing: { readonly target: Resources; readonly targetRevision: Revision } | undefined;
  /** When the last patch failed. */
  readonly failedAtMs: number | undefined;
  /** Target revision of the last successful patch. */
  readonly currentRevision: Revision;
}

/** One desired-resources result from metrics, kept for the downscale stabilization window. */
export interface DesiredSample {
  /** When it was computed. */
  readonly atMs: number;
  /** Desired resources from metrics, within the VM bounds (§3.4 steps 1, 4–6). */
  readonly desired: Resources;
}

/** The whole per-VM state. */
export interface State {
  /** Timings and units. */
  readonly config: CoreConfig;
  /** The VM as last observed (bounds, config). */
  readonly vm: VmInfo;
  /** What the agent believes is applied (it trusts its own successful patches). */
  readonly using: Resources;
  /** Scheduler plugin. */
  readonly plugin: PluginState;
  /** vm-monitor. */
  readonly monitor: MonitorState;
  /** NeonVM. */
  readonly neonvm: NeonVmState;
  /** Latest system metrics and when they arrived. */
  readonly systemMetrics: { readonly value: SystemMetrics; readonly atMs: number } | undefined;
  /** Latest LFC metrics and when they arrived. */
  readonly lfcMetrics: { readonly value: LfcMetrics; readonly atMs: number } | undefined;
  /** Revision of the newest desired resources. */
  readonly targetRevision: Revision;
  /** Desired resources when the target revision was last bumped. */
  readonly lastDesired: Resources | undefined;
  /**
   * Desired results of the last `downscaleStabilizationMs`, oldest first, for the downscale
   * stabilization window; empty when the window is 0. Only samples that exceed the newest one in
   * some field are kept (a later sample at least as high outlasts them), so it stays short.
   */
  readonly desiredHistory: readonly DesiredSample[];
}

/** Ask the scheduler for a permit (or tell it current usage). */
export interface PluginRequestAction {
  /** Last permit, or null before the first. */
  readonly lastPermit: Resources | null;
  /** Resources to ask for. */
  readonly target: Resources;
  /** `{loadAvg1M}` when system metrics are known. */
  readonly metrics: { readonly loadAvg1M: number } | null;
  /** Revision this request serves. */
  readonly targetRevision: Revision;
}

/** Patch the VirtualMachine's `use` values. */
export interface NeonVmRequestAction {
  /** Current usage. */
  readonly current: Resources;
  /** New usage. */
  readonly target: Resources;
  /** Revision written to `spec.targetRevision`. */
  readonly targetRevision: Revision;
}

/** Tell the monitor of an upscale, or ask it to downscale. */
export interface MonitorAction {
  /** What the monitor has approved now. */
  readonly current: Resources;
  /** What to notify / ask for. */
  readonly target: Resources;
  /** Revision this request serves. */
  readonly targetRevision: Revision;
}

/** The next things to do; absent keys mean nothing of that kind. */
export interface Actions {
  /** Decide again after this long even if nothing happens. */
  readonly wait?: { readonly durationMs: number };
  /** Scheduler permit request. */
  readonly pluginRequest?: PluginRequestAction;
  /** NeonVM patch. */
  readonly neonvmRequest?: NeonVmRequestAction;
  /** Monitor `UpscaleNotification`. */
  readonly monitorUpscale?: MonitorAction;
  /** Monitor `DownscaleRequest`. */
  readonly monitorDownscale?: MonitorAction;
}

/** The result of {@linkcode decide}. */
export interface Decision {
  /** State with revision bookkeeping applied; keep it. */
  readonly state: State;
  /** What to do next. */
  readonly actions: Actions;
  /** Desired resources this round. */
  readonly desired: Resources;
  /** The goal from metrics. */
  readonly goal: GoalCu;
}

// ---------------------------------------------------------------------------------------------
// Construction and events
// ---------------------------------------------------------------------------------------------

/** Fresh state for a runner that starts managing `vm`. */
export function initialState(config: CoreConfig, vm: VmInfo): State {
  const using = { vCPUs: vm.cpu.use, mem: vm.mem.use };
  return {
    config,
    vm,
    using,
    plugin: {
      generation: 0,
      ongoing: undefined,
      lastRequest: undefined,
      lastFailureAtMs: undefined,
      permit: undefined,
      currentRevision: ZERO_REVISION,
      jitterMs: 0,
      migrating: false,
    },
    monitor: {
      generation: 0,
      approved: undefined,
      ongoing: undefined,
      requestedUpscale: undefined,
      deniedDownscale: undefined,
      upscaleFailureAtMs: undefined,
      downscaleFailureAtMs: undefined,
      currentRevision: ZERO_REVISION,
    },
    neonvm: { ongoing: undefined, failedAtMs: undefined, currentRevision: ZERO_REVISION },
    systemMetrics: undefined,
    lfcMetrics: undefined,
    targetRevision: vm.currentRevision ?? ZERO_REVISION,
    lastDesired: undefined,
    desiredHistory: [],
  };
}

/**
 * The VM object changed: take new bounds and config but keep the agent's own usage (the reference
 * trusts its patches over observed `use` values, §11). LFC metrics are dropped when disabled.
 */
export function vmUpdated(s: State, vm: VmInfo): State {
  const lfcOn = withOverrides(s.config.defaultScaling, vm.config).enableLFCMetrics;
  return { ...s, vm, lfcMetrics: lfcOn ? s.lfcMetrics : undefined };
}

/** New system metrics arrived. */
export function systemMetricsUpdated(s: State, m: SystemMetrics, nowMs: number): State {
  return { ...s, systemMetrics: { value: m, atMs: nowMs } };
}

/** New LFC metrics arrived (ignored while LFC metrics are disabled for the VM). */
export function lfcMetricsUpdated(s: State, m: LfcMetrics, nowMs: number): State {
  if (!scalingConfig(s).enableLFCMetrics) return { ...s, lfcMetrics: undefined };
  return { ...s, lfcMetrics: { value: m, atMs: nowMs } };
}

/** A permit request is being sent (called with the action decide returned). */
export function pluginRequestStarted(
  s: State,
  a: PluginRequestAction,
  nowMs: number,
  jitterMs = 0,
): State {
  return {
    ...s,
    plugin: {
      ...s.plugin,
      ongoing: { requested: a.target, targetRevision: a.targetRevision },
      lastRequest: { atMs: nowMs, resources: a.target },
      jitterMs,
    },
  };
}

/** Outcome of validating a permit. */
export type PermitCheck = { ok: true } | { ok: false; error: string };

/** A permit response arrived for generation `gen`; invalid permits count as failures (§1.1). */
export function pluginRequestSucceeded(
  s: State,
  gen: number,
  permit: Resources,
  migrate: boolean,
  nowMs: number,
): { state: State; check: PermitCheck } {
  if (gen !== s.plugin.generation || s.plugin.ongoing === undefined) {
    return { state: s, check: { ok: false, error: "stale response from a previous scheduler" } };
  }
  const requested = s.plugin.ongoing.requested;
  let error: string | undefined;
  if (permit.vCPUs === 0 || permit.mem === 0) error = "permit has a zero field";
  else if (hasFieldGreater(permit, requested)) error = "permit exceeds the requested resources";
  else if (hasFieldLess(permit, s.using)) error = "permit is below current usage";
  if (error !== undefined) {
    return {
      state: { ...s, plugin: { ...s.plugin, ongoing: undefined, lastFailureAtMs: nowMs } },
      check: { ok: false, error },
    };
  }
  return {
    state: {
      ...s,
      plugin: {
        ...s.plugin,
        ongoing: undefined,
        lastFailureAtMs: undefined,
        permit,
        currentRevision: s.plugin.ongoing.targetRevision,
        migrating: s.plugin.migrating || migrate,
      },
    },
    check: { ok: true },
  };
}

/** A permit request of generation `gen` failed (transport, status, timeout). */
export function pluginRequestFailed(s: State, gen: number, nowMs: number): State {
  if (gen !== s.plugin.generation) return s;
  return { ...s, plugin: { ...s.plugin, ongoing: undefined, lastFailureAtMs: nowMs } };
}

/**
 * The scheduler pod changed (restart, new leader, gone). Why (fix of a reference failure mode): a
 * request to the old scheduler may never answer or answer late; the reference could stay marked
 * "ongoing" and never ask again. Here the generation moves on, late answers are ignored, the
 * in-flight mark is dropped and the next request goes out at once to the new scheduler.
 */
export function schedulerChanged(s: State): State {
  return {
    ...s,
    plugin: {
      ...s.plugin,
      generation: s.plugin.generation + 1,
      ongoing: undefined,
      lastRequest: undefined,
      lastFailureAtMs: undefined,
    },
  };
}

/** A NeonVM patch is being sent. */
export function neonvmRequestStarted(s: State, a: NeonVmRequestAction): State {
  return {
    ...s,
    neonvm: { ...s.neonvm, ongoing: { target: a.target, targetRevision: a.targetRevision } },
  };
}

/** The NeonVM patch succeeded: the agent now uses its target. */
export function neonvmRequestSucceeded(s: State): State {
  const o = s.neonvm.ongoing;
  if (o === undefined) return s;
  return {
    ...s,
    using: o.target,
    neonvm: { ongoing: undefined, failedAtMs: undefined, currentRevision: o.targetRevision },
  };
}

/** The NeonVM patch failed. */
export function neonvmRequestFailed(s: State, nowMs: number): State {
  return { ...s, neonvm: { ...s.neonvm, ongoing: undefined, failedAtMs: nowMs } };
}

/** A monitor connection was established: it has approved what the VM uses. */
export function monitorConnected(s: State): State {
  return {
    ...s,
    monitor: {
      ...s.monitor,
      generation: s.monitor.generation + 1,
      approved: s.using,
      ongoing: undefined,
      deniedDownscale: undefined,
      upscaleFailureAtMs: undefined,
      downscaleFailureAtMs: undefined,
    },
  };
}

/**
 * The monitor connection ended: monitor state is cleared. Why (deliberate difference): an
 * unsatisfied upscale request survives, since a monitor under memory pressure is exactly the one
 * whose connection may drop; forgetting its request would miss the upscale.
 */
export function monitorDisconnected(s: State): State {
  return {
    ...s,
    monitor: {
      ...s.monitor,
      generation: s.monitor.generation + 1,
      approved: undefined,
      ongoing: undefined,
      deniedDownscale: undefined,
      upscaleFailureAtMs: undefined,
      downscaleFailureAtMs: undefined,
      requestedUpscale: s.monitor.requestedUpscale?.satisfiedAtMs === undefined
        ? s.monitor.requestedUpscale
        : undefined,
    },
  };
}

/** The monitor sent `UpscaleRequest` (memory). */
export function monitorUpscaleRequested(s: State, nowMs: number): State {
  const base = s.monitor.approved ?? s.using;
  const prev = s.monitor.requestedUpscale;
  // Why: a repeat while an earlier request is still unmet keeps the earlier (higher) base, so a
  // downscale the monitor approved in between cannot shrink what it asked for.
  const keep = prev !== undefined && prev.satisfiedAtMs === undefined;
  return {
    ...s,
    monitor: {
      ...s.monitor,
      requestedUpscale: {
        atMs: nowMs,
        base: keep ? maxRes(prev.base, base) : base,
        satisfiedAtMs: undefined,
      },
    },
  };
}

/** A monitor request is being sent. */
export function monitorRequestStarted(
  s: State,
  kind: "upscale" | "downscale",
  a: MonitorAction,
): State {
  return {
    ...s,
    monitor: {
      ...s.monitor,
      ongoing: { kind, requested: a.target, targetRevision: a.targetRevision },
    },
  };
}

/** The monitor confirmed an upscale (generation `gen`). */
export function monitorUpscaleSucceeded(s: State, gen: number, nowMs: number): State {
  const o = s.monitor.ongoing;
  if (gen !== s.monitor.generation || o === undefined || o.kind !== "upscale") return s;
  const ru = s.monitor.requestedUpscale;
  const satisfied = ru !== undefined && ru.satisfiedAtMs === undefined &&
    o.requested.mem > ru.base.mem;
  return {
    ...s,
    monitor: {
      ...s.monitor,
      ongoing: undefined,
      approved: o.requested,
      upscaleFailureAtMs: undefined,
      currentRevision: o.targetRevision,
      requestedUpscale: satisfied ? { ...ru, satisfiedAtMs: nowMs } : ru,
    },
  };
}

/** The monitor answered a downscale request (generation `gen`): approved or denied. */
export function monitorDownscaleResult(s: State, gen: number, ok: boolean, nowMs: number): State {
  const o = s.monitor.ongoing;
  if (gen !== s.monitor.generation || o === undefined || o.kind !== "downscale") return s;
  if (ok) {
    return {
      ...s,
      monitor: {
        ...s.monitor,
        ongoing: undefined,
        approved: o.requested,
        downscaleFailureAtMs: undefined,
        currentRevision: o.targetRevision,
      },
    };
  }
  return {
    ...s,
    monitor: {
      ...s.monitor,
      ongoing: undefined,
      deniedDownscale: {
        atMs: nowMs,
        current: s.monitor.approved ?? s.using,
        requested: o.requested,
      },
    },
  };
}

/** A monitor request failed (error, timeout, `InternalError`). */
export function monitorRequestFailed(s: State, gen: number, nowMs: number): State {
  const o = s.monitor.ongoing;
  if (gen !== s.monitor.generation || o === undefined) return s;
  return {
    ...s,
    monitor: {
      ...s.monitor,
      ongoing: undefined,
      ...(o.kind === "upscale" ? { upscaleFailureAtMs: nowMs } : { downscaleFailureAtMs: nowMs }),
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Decisions
// ---------------------------------------------------------------------------------------------

/** The VM's effective scaling config (defaults with its annotation overrides). */
export function scalingConfig(s: State): ScalingConfig {
  return withOverrides(s.config.defaultScaling, s.vm.config);
}

function vmMin(s: State): Resources {
  return { vCPUs: s.vm.cpu.min, mem: s.vm.mem.min };
}

function vmMax(s: State): Resources {
  return { vCPUs: s.vm.cpu.max, mem: s.vm.mem.max };
}

/** Metrics younger than their max age. */
function freshMetrics(s: State, nowMs: number) {
  const sys = s.systemMetrics !== undefined &&
      nowMs - s.systemMetrics.atMs <= s.config.systemMetricsMaxAgeMs
    ? s.systemMetrics.value
    : undefined;
  const lfc = s.lfcMetrics !== undefined && nowMs - s.lfcMetrics.atMs <= s.config.lfcMetricsMaxAgeMs
    ? s.lfcMetrics.value
    : undefined;
  return { sys, lfc };
}

/**
 * Until when a requested upscale is in effect. Why (fix of a reference failure mode): the
 * reference honours it for a fixed 10 s from receipt, so an upscale held up by a slow or partial
 * permit expired before it happened and the fast allocation was missed. Here it holds until the
 * monitor has been told of more memory than its base (then 10 s more), or until it cannot be met
 * (memory already at max); a hard cap of 6× the window keeps a hopeless request from pinning the
 * VM forever.
 */
function requestedUpscaleUntilMs(s: State): number | undefined {
  const ru = s.monitor.requestedUpscale;
  if (ru === undefined) return undefined;
  const valid = s.config.monitorRequestedUpscaleValidMs;
  if (ru.satisfiedAtMs !== undefined) return ru.satisfiedAtMs + valid;
  if (ru.base.mem >= s.vm.mem.max) return ru.atMs + valid;
  return ru.atMs + 6 * valid;
}

function cuCount(x: number, unit: number): number {
  return 1 + Math.floor(x / unit);
}

interface Desired {
  readonly desired: Resources;
  readonly goal: GoalCu;
  readonly history: readonly DesiredSample[];
  readonly waitMs: (actions: Actions) => number | undefined;
}

/** Upper limit on kept samples; never reached in practice (see recordDesired). */
const MAX_DESIRED_SAMPLES = 64;

/**
 * Adds the sample `desired` at `nowMs` to the stabilization history: drops samples older than the
 * window and samples no higher in any field than the new one (the new one outlasts them).
 */
function recordDesired(
  history: readonly DesiredSample[],
  nowMs: number,
  desired: Resources,
  windowMs: number,
): DesiredSample[] {
  const kept = history.filter((e) =>
    nowMs - e.atMs < windowMs && hasFieldGreater(e.desired, desired)
  );
  kept.push({ atMs: nowMs, desired });
  // Each kept sample is higher than every later one in some field, so the list is bounded by the
  // number of distinct CPU plus memory levels; should that ever exceed the cap, the two oldest
  // merge into their maximum at the younger time, which only holds a downscale longer.
  while (kept.length > MAX_DESIRED_SAMPLES) {
    const [a, b] = [kept[0]!, kept[1]!];
    kept.splice(0, 2, { atMs: b.atMs, desired: maxRes(a.desired, b.desired) });
  }
  return kept;
}

/**
 * The downscale stabilization window (our extension, not in the reference; off when the window
 * is 0). Why: on a slow host (QEMU under TCG) each memory unplug makes the guest kernel offline
 * pages, which lifts the 1-minute load average over the next compute-unit boundary by the next
 * metrics tick, so the reference algorithm flips between two sizes every few seconds; each flip
 * costs a permit round trip, a VM patch and a memory plug/unplug. As Kubernetes HPA's
 * `scaleDown.stabilizationWindowSeconds`: per field, a decrease below current usage goes no lower
 * than the highest desired result of the window (and never above usage or the VM's max, so a
 * lowered max still applies at once); increases are untouched. Returns the floor and, when it
 * holds the result up, how long until the oldest sample leaves the window.
 */
function stabilizationFloor(
  s: State,
  history: readonly DesiredSample[],
  nowMs: number,
): { floor: Resources; leftMs: number } {
  let held = history[history.length - 1]!.desired;
  for (const e of history) held = maxRes(held, e.desired);
  const floor = minRes(minRes(held, s.using), vmMax(s));
  const leftMs = history[0]!.atMs + s.config.downscaleStabilizationMs - nowMs;
  return { floor, leftMs };
}

function desiredResources(s: State, nowMs: number): Desired {
  const cu = s.config.computeUnit;
  const { sys, lfc } = freshMetrics(s, nowMs);
  const goal = computeGoalCu(scalingConfig(s), cu, sys, lfc);
  let goalCu = goal.goalCu;
  const initialGoalCu = goalCu;

  const ruUntil = requestedUpscaleUntilMs(s);
  const ruLeft = ruUntil === undefined ? 0 : ruUntil - nowMs;
  let ruAffected = false;
  if (ruLeft > 0 && s.monitor.requestedUpscale !== undefined) {
    const reqCu = cuCount(s.monitor.requestedUpscale.base.mem, cu.mem);
    if (reqCu > initialGoalCu) {
      ruAffected = true;
      goalCu = Math.max(goalCu, reqCu);
    }
  }

  const dd = s.monitor.deniedDownscale;
  const ddLeft = dd === undefined ? 0 : dd.atMs + s.config.monitorDeniedDownscaleCooldownMs - nowMs;
  const ddInEffect = dd !== undefined && ddLeft > 0;
  let ddAffected = false;
  if (ddInEffect) {
    const reqCu = Math.max(
      cuCount(dd.requested.vCPUs, cu.vCPUs),
      cuCount(dd.requested.mem, cu.mem),
    );
    if (reqCu > initialGoalCu) {
      ddAffected = true;
      goalCu = Math.max(goalCu, reqCu);
    }
  }

  // §3.4 steps 4–6: compute units to resources, never down on partial metrics, VM bounds.
  const bounded = (units: number): Resources => {
    let res = mulRes(cu, units);
    if (!goal.hasAllMetrics) res = maxRes(res, s.using);
    return maxRes(minRes(res, vmMax(s)), vmMin(s));
  };
  let result = bounded(goalCu);

  // The stabilization window damps what metrics want; the monitor's requested upscale and
  // denied downscale (above and below) keep the reference's own timers.
  const windowMs = s.config.downscaleStabilizationMs;
  let history = s.desiredHistory;
  let stabilizeLeftMs: number | undefined;
  if (windowMs > 0) {
    history = recordDesired(history, nowMs, bounded(initialGoalCu), windowMs);
    const st = stabilizationFloor(s, history, nowMs);
    const stabilized = maxRes(result, st.floor);
    if (hasFieldGreater(stabilized, result)) stabilizeLeftMs = st.leftMs;
    result = stabilized;
  }
  if (ddInEffect) {
    const roundedUp = {
      vCPUs: cu.vCPUs * cuCount(dd.requested.vCPUs, cu.vCPUs),
      mem: cu.mem * cuCount(dd.requested.mem, cu.mem),
    };
    result = maxRes(result, minRes(roundedUp, dd.current));
  }
  const waitMs = (actions: Actions): number | undefined => {
    const waits = [
      ddAffected && actions.monitorDownscale === undefined && s.monitor.ongoing === undefined
        ? ddLeft
        : undefined,
      ruAffected ? ruLeft : undefined,
      stabilizeLeftMs,
    ].filter((w) => w !== undefined);
    return waits.length === 0 ? undefined : Math.min(...waits);
  };
  return { desired: result, goal, history, waitMs };
}

function withTargetRevision(s: State, desired: Resources): State {
  const last = s.lastDesired ?? s.using;
  if (eqRes(last, desired)) return s.lastDesired === undefined ? { ...s, lastDesired: last } : s;
  let flags = 0;
  if (hasFieldGreater(desired, last)) flags |= REVISION_FLAG_UPSCALE;
  if (hasFieldLess(desired, last)) flags |= REVISION_FLAG_DOWNSCALE;
  return { ...s, targetRevision: nextRevision(s.targetRevision, flags), lastDesired: desired };
}

function revMin(a: Revision, b: Revision): Revision {
  return b.value < a.value ? b : a;
}

function pluginAction(
  s: State,
  nowMs: number,
  desired: Resources,
): { action?: PluginRequestAction; waitMs?: number } {
  const p = s.plugin;
  if (p.ongoing !== undefined) return {};
  if (p.lastFailureAtMs !== undefined && nowMs - p.lastFailureAtMs < s.config.pluginRetryWaitMs) {
    return { waitMs: p.lastFailureAtMs + s.config.pluginRetryWaitMs - nowMs };
  }
  // Never ask for less than current usage: decreases are told after they are applied.
  const request = clamp(s.using, desired, s.using, undefined);
  const current = s.neonvm.ongoing === undefined
    ? s.using
    : maxRes(s.using, s.neonvm.ongoing.target);
  const tick = s.config.pluginRequestTickMs - p.jitterMs;
  const timeForRequest = p.lastRequest === undefined || p.permit === undefined ||
    nowMs - p.lastRequest.atMs >= tick;
  const untilTick = p.lastRequest === undefined ? 0 : p.lastRequest.atMs + tick - nowMs;
  const wantNew = p.lastRequest !== undefined && p.permit !== undefined &&
    !eqRes(request, p.permit);
  let backoffMs: number | undefined;
  if (
    p.lastRequest !== undefined && p.permit !== undefined &&
    hasFieldGreater(p.lastRequest.resources, p.permit)
  ) {
    const left = p.lastRequest.atMs + s.config.pluginDeniedRetryWaitMs - nowMs;
    if (left > 0) backoffMs = left;
  }
  const shouldRequestNew = wantNew && backoffMs === undefined;
  if (timeForRequest || shouldRequestNew) {
    const sys = freshMetrics(s, nowMs).sys;
    return {
      action: {
        lastPermit: p.permit ?? null,
        target: shouldRequestNew ? request : current,
        metrics: sys === undefined ? null : { loadAvg1M: sys.loadAverage1Min },
        targetRevision: s.targetRevision,
      },
    };
  }
  const waits = [untilTick];
  if (wantNew && backoffMs !== undefined) waits.push(backoffMs);
  return { waitMs: Math.min(...waits) };
}

/** Rounds memory to whole slots in the direction that stays within the allowed range. */
function toSlots(s: State, target: Resources): Resources {
  const slot = s.vm.slotSizeBytes;
  if (slot <= 0 || target.mem % slot === 0) return target;
  const mem = target.mem > s.using.mem
    ? Math.max(s.using.mem, Math.floor(target.mem / slot) * slot)
    : Math.min(s.using.mem, Math.ceil(target.mem / slot) * slot);
  return { vCPUs: target.vCPUs, mem };
}

function neonvmAction(
  s: State,
  nowMs: number,
  desired: Resources,
  pluginRequested: Resources | undefined,
): { action?: NeonVmRequestAction; waitMs?: number } {
  const lower = s.monitor.approved ?? s.using;
  // After a migrate answer the scheduler will not back growth on this node.
  const upper = s.plugin.migrating ? s.using : (s.plugin.permit ?? s.using);
  // Why (fix of a reference quirk): a partial permit need not be a whole number of memory slots;
  // the reference divided and truncated silently. Memory is rounded to slots within the bounds.
  const target = toSlots(s, clamp(s.using, desired, lower, upper));
  if (eqRes(target, s.using)) return {};
  const conflictsWithPlugin = pluginRequested !== undefined &&
    hasFieldLess(pluginRequested, target);
  if (conflictsWithPlugin || s.neonvm.ongoing !== undefined) return {};
  if (s.neonvm.failedAtMs !== undefined) {
    const left = s.neonvm.failedAtMs + s.config.neonvmRetryWaitMs - nowMs;
    if (left > 0) return { waitMs: left };
  }
  let rev = s.targetRevision;
  if (hasFieldLess(target, s.using) && s.monitor.currentRevision.value > 0) {
    rev = revMin(rev, s.monitor.currentRevision);
  }
  if (hasFieldGreater(target, s.using) && s.plugin.currentRevision.value > 0) {
    rev = revMin(rev, s.plugin.currentRevision);
  }
  return { action: { current: s.using, target, targetRevision: rev } };
}

function monitorUpscaleAction(
  s: State,
  nowMs: number,
  desired: Resources,
): { action?: MonitorAction; waitMs?: number } {
  const approved = s.monitor.approved;
  if (approved === undefined) return {};
  let req = clamp(approved, s.using, approved, maxRes(desired, approved));
  req = clamp(approved, req, undefined, addRes(approved, s.config.computeUnit));
  if (eqRes(req, approved)) return {};
  if (s.monitor.ongoing !== undefined) return {};
  if (s.monitor.upscaleFailureAtMs !== undefined) {
    const left = s.monitor.upscaleFailureAtMs + s.config.monitorRetryWaitMs - nowMs;
    if (left > 0) return { waitMs: left };
  }
  return { action: { current: approved, target: req, targetRevision: s.targetRevision } };
}

function monitorDownscaleAction(
  s: State,
  nowMs: number,
  desired: Resources,
  plannedUpscale: boolean,
): { action?: MonitorAction; waitMs?: number } {
  const approved = s.monitor.approved;
  if (approved === undefined || plannedUpscale) return {};
  let req = clamp(approved, desired, undefined, approved);
  req = clamp(approved, req, saturatingSub(approved, s.config.computeUnit), undefined);
  if (eqRes(req, approved)) return {};
  if (s.monitor.ongoing !== undefined) return {};
  if (s.monitor.downscaleFailureAtMs !== undefined) {
    const left = s.monitor.downscaleFailureAtMs + s.config.monitorRetryWaitMs - nowMs;
    if (left > 0) return { waitMs: left };
  }
  const dd = s.monitor.deniedDownscale;
  if (
    dd !== undefined && nowMs < dd.atMs + s.config.monitorDeniedDownscaleCooldownMs &&
    !hasFieldLess(dd.requested, req)
  ) {
    // The reference panics here; desiredResources already prevents it, so just hold off.
    return { waitMs: dd.atMs + s.config.monitorDeniedDownscaleCooldownMs - nowMs };
  }
  return { action: { current: approved, target: req, targetRevision: s.targetRevision } };
}

/** Decides what to do next at `nowMs` (§3.5). */
export function decide(state: State, nowMs: number): Decision {
  const d = desiredResources(state, nowMs);
  const recorded = d.history === state.desiredHistory
    ? state
    : { ...state, desiredHistory: d.history };
  const s = withTargetRevision(recorded, d.desired);
  const plugin = pluginAction(s, nowMs, d.desired);
  const pluginRequested = s.plugin.ongoing !== undefined
    ? s.plugin.ongoing.requested
    : plugin.action?.target;
  const neonvm = neonvmAction(s, nowMs, d.desired, pluginRequested);
  const up = monitorUpscaleAction(s, nowMs, d.desired);
  const down = monitorDownscaleAction(s, nowMs, d.desired, up.action !== undefined);
  const partial: {
    -readonly [K in keyof Actions]: Actions[K];
  } = {};
  if (plugin.action) partial.pluginRequest = plugin.action;
  if (neonvm.action) partial.neonvmRequest = neonvm.action;
  if (up.action) partial.monitorUpscale = up.action;
  if (down.action) partial.monitorDownscale = down.action;
  const waits = [d.waitMs(partial), plugin.waitMs, neonvm.waitMs, up.waitMs, down.waitMs]
    .filter((w): w is number => w !== undefined);
  if (waits.length > 0) partial.wait = { durationMs: Math.max(0, Math.min(...waits)) };
  return { state: s, actions: partial, desired: d.desired, goal: d.goal };
}
