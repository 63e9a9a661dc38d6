/**
 * The vm-monitor's decisions as a pure state machine (reference §1.3.1): feed it memory samples,
 * downscale requests and upscale notifications with `now`; it says whether to ask the agent for
 * more memory, whether a downscale is safe, and what sizes to apply. The io shell applies them and
 * reports back with {@linkcode applied}. Pure: no I/O, no clocks, no logging.
 * @module
 */
import {
  addSample,
  emptyWindow,
  type MemorySample,
  type MemoryWindow,
  summarize,
  type WindowSummary,
} from "./memory_window.ts";
import {
  type Managed,
  type Sizing,
  type SizingConfig,
  targetSizing,
  toMiB,
  usableBytes,
} from "./sizing.ts";

/** Everything the core needs to decide. */
export interface MonitorCoreConfig {
  /** Sizing constants. */
  readonly sizing: SizingConfig;
  /** What the monitor manages. */
  readonly managed: Managed;
  /** Samples in the rolling mean (reference: 5, i.e. 500 ms at 100 ms). */
  readonly historyLen: number;
  /** A downscale fails with an internal error when the newest sample is older (ref: 5 s). */
  readonly statsMaxAgeMs: number;
  /** At most one `UpscaleRequest` per this many ms (ref: 1 s). */
  readonly upscaleRequestMinIntervalMs: number;
}

/** The reference's timing constants. */
export const DEFAULT_TIMING = {
  historyLen: 5,
  statsMaxAgeMs: 5_000,
  upscaleRequestMinIntervalMs: 1_000,
} as const;

/** The monitor's state. */
export interface MonitorState {
  /** Recent memory samples. */
  readonly window: MemoryWindow;
  /** The sizing currently applied to the cgroup and the LFC. */
  readonly sizing: Sizing;
  /** When the last `UpscaleRequest` was sent, epoch ms. */
  readonly lastUpscaleRequestAtMs: number | undefined;
  /** When the monitor started; stands in for the newest sample until there is one. */
  readonly startedAtMs: number;
}

/**
 * The state at start-up. As the reference does, the first sizing uses the guest's own total
 * memory (MemTotal, which already excludes the kernel's reserve) without subtracting the buffer.
 */
export function initialState(
  cfg: MonitorCoreConfig,
  systemMemBytes: number,
  now: number,
): MonitorState {
  return {
    window: emptyWindow(cfg.historyLen),
    sizing: targetSizing(cfg.sizing, cfg.managed, systemMemBytes),
    lastUpscaleRequestAtMs: undefined,
    startedAtMs: now,
  };
}

/** Records a memory sample. */
export function onSample(state: MonitorState, sample: MemorySample): MonitorState {
  return { ...state, window: addSample(state.window, sample) };
}

/** Why an upscale request is or is not due. */
export type UpscaleCheck =
  | { readonly due: true; readonly avgBytes: number; readonly thresholdBytes: number }
  | {
    readonly due: false;
    readonly reason: "unmanaged" | "no_samples" | "below_threshold" | "rate_limited";
  };

/**
 * Whether to send `UpscaleRequest` now: the mean non-reclaimable usage is at or above the
 * threshold and the last request was at least 1 s ago.
 */
export function checkUpscaleRequest(
  cfg: MonitorCoreConfig,
  state: MonitorState,
  now: number,
): UpscaleCheck {
  if (!cfg.managed.cgroup) return { due: false, reason: "unmanaged" };
  const summary = summarize(state.window);
  if (summary.count === 0) return { due: false, reason: "no_samples" };
  if (summary.avgNonReclaimableBytes < state.sizing.thresholdBytes) {
    return { due: false, reason: "below_threshold" };
  }
  const last = state.lastUpscaleRequestAtMs;
  if (last !== undefined && now - last < cfg.upscaleRequestMinIntervalMs) {
    return { due: false, reason: "rate_limited" };
  }
  return {
    due: true,
    avgBytes: summary.avgNonReclaimableBytes,
    thresholdBytes: state.sizing.thresholdBytes,
  };
}

/** Records that an `UpscaleRequest` was sent at `now`. */
export function upscaleRequestSent(state: MonitorState, now: number): MonitorState {
  return { ...state, lastUpscaleRequestAtMs: now };
}

/** The answer to a `DownscaleRequest`. */
export type DownscaleDecision =
  /** Nothing is managed: say yes and change nothing. */
  | { readonly kind: "approve_unmanaged"; readonly status: string }
  /** Safe: apply `target` (LFC first, then cgroup limits), then reply `Ok=true`. */
  | { readonly kind: "approve"; readonly target: Sizing }
  /** Not safe: reply `Ok=false` with `status`. */
  | { readonly kind: "deny"; readonly status: string }
  /** Cannot decide: reply `InternalError`. */
  | { readonly kind: "error"; readonly error: string };

/** Status of a downscale when neither the cgroup nor the LFC is managed (reference text). */
export const UNMANAGED_STATUS = "monitor is not managing cgroup or file cache";

/**
 * Decides a downscale to `targetMemBytes`: usable = target − 100 MiB; with a cgroup, fails if the
 * newest sample is older than 5 s, denies with ≤ 1 sample, and denies when the new threshold is
 * below mean usage + 100 MiB.
 */
export function decideDownscale(
  cfg: MonitorCoreConfig,
  state: MonitorState,
  targetMemBytes: number,
  now: number,
): DownscaleDecision {
  if (!cfg.managed.cgroup && !cfg.managed.lfc) {
    return { kind: "approve_unmanaged", status: UNMANAGED_STATUS };
  }
  const usable = usableBytes(cfg.sizing, targetMemBytes);
  const target = targetSizing(cfg.sizing, cfg.managed, usable);
  if (cfg.managed.cgroup) {
    const summary = summarize(state.window);
    // As in the reference, start-up counts as "stats as of now": no sample for 5 s after start
    // (a cgroup that cannot be read) is an error, not an endless "not enough samples".
    const newest = summary.newestAtMs ?? state.startedAtMs;
    if (now - newest > cfg.statsMaxAgeMs) {
      return {
        kind: "error",
        error: `haven't gotten cgroup memory stats recently enough to determine downscaling ` +
          `information (newest is ${now - newest} ms old)`,
      };
    }
    if (summary.count <= 1) {
      return { kind: "deny", status: "haven't received enough cgroup memory stats yet" };
    }
    const needed = summary.avgNonReclaimableBytes + cfg.sizing.downscaleBufferBytes;
    if (target.thresholdBytes < needed) {
      return { kind: "deny", status: denyStatus(cfg, target, summary) };
    }
  }
  return { kind: "approve", target };
}

/** The sizing to apply after the agent granted `grantedMemBytes` (usable = granted − 100 MiB). */
export function planUpscale(cfg: MonitorCoreConfig, grantedMemBytes: number): Sizing {
  return targetSizing(cfg.sizing, cfg.managed, usableBytes(cfg.sizing, grantedMemBytes));
}

/** Records the sizing the io shell actually applied. */
export function applied(state: MonitorState, sizing: Sizing): MonitorState {
  return { ...state, sizing };
}

/** A human status string for an applied sizing (the `Status` of an approved downscale). */
export function describeSizing(cfg: MonitorCoreConfig, sizing: Sizing): string {
  const parts: string[] = [];
  if (cfg.managed.lfc) parts.push(`set file cache size to ${toMiB(sizing.lfcBytes)} MiB`);
  if (sizing.memoryHighBytes !== undefined && sizing.memoryMaxBytes !== undefined) {
    parts.push(
      `set cgroup memory.high to ${toMiB(sizing.memoryHighBytes)} MiB, ` +
        `of new max ${toMiB(sizing.memoryMaxBytes)} MiB`,
    );
  }
  if (cfg.managed.cgroup) {
    parts.push(`set upscale threshold to ${toMiB(sizing.thresholdBytes)} MiB`);
  }
  return parts.join("; ");
}

function denyStatus(cfg: MonitorCoreConfig, target: Sizing, summary: WindowSummary): string {
  return `calculated memory threshold too low: ${toMiB(target.thresholdBytes)} MiB ` +
    `(new threshold) < ${toMiB(summary.avgNonReclaimableBytes)} MiB (current usage) + ` +
    `${toMiB(cfg.sizing.downscaleBufferBytes)} MiB (buffer)`;
}
