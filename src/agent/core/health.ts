/**
 * Runner health (§3.6): a runner is "stuck" when the monitor has been silent too long (or never
 * answered within the startup grace period) or when too many scheduler, monitor or NeonVM
 * requests failed within their windows. Pure: no I/O; `now` is a parameter.
 * @module
 */
import type { AgentConfig } from "../../api/agent_config.ts";

/** Failure timestamps and monitor contact, as a runner records them. */
export interface HealthRecord {
  /** When the runner started (or the endpoint was assigned). */
  readonly startMs: number;
  /** Last successful monitor exchange (health check or request). */
  readonly lastSuccessfulMonitorCommMs: number | undefined;
  /** Failed monitor requests. */
  readonly failedMonitorMs: readonly number[];
  /** Failed or denied scheduler requests. */
  readonly failedSchedulerMs: readonly number[];
  /** Failed NeonVM patches. */
  readonly failedNeonVmMs: readonly number[];
}

/** A fresh record for a runner starting at `startMs`. */
export function newHealthRecord(startMs: number): HealthRecord {
  return {
    startMs,
    lastSuccessfulMonitorCommMs: undefined,
    failedMonitorMs: [],
    failedSchedulerMs: [],
    failedNeonVmMs: [],
  };
}

const MAX_WINDOW_MS = 10 * 60_000;

/** Appends a failure at `nowMs`, dropping entries older than any window (10 min). */
export function recordFailure(list: readonly number[], nowMs: number): number[] {
  return [...list.filter((t) => nowMs - t <= MAX_WINDOW_MS), nowMs];
}

function countSince(list: readonly number[], sinceMs: number): number {
  return list.filter((t) => t > sinceMs).length;
}

/** Why a runner is stuck; empty when healthy. */
export function stuckReasons(h: HealthRecord, cfg: AgentConfig, nowMs: number): string[] {
  const reasons: string[] = [];
  const m = cfg.monitor;
  if (h.lastSuccessfulMonitorCommMs === undefined) {
    if (nowMs > h.startMs + m.unhealthyStartupGracePeriodSeconds * 1000) {
      reasons.push("no successful monitor communication since start");
    }
  } else if (
    nowMs - h.lastSuccessfulMonitorCommMs > m.unhealthyAfterSilenceDurationSeconds * 1000
  ) {
    reasons.push("monitor silent too long");
  }
  const rate = (list: readonly number[], r: { intervalSeconds: number; threshold: number }) =>
    countSince(list, nowMs - r.intervalSeconds * 1000) > r.threshold;
  if (rate(h.failedMonitorMs, m.maxFailedRequestRate)) {
    reasons.push("too many failed monitor requests");
  }
  if (rate(h.failedSchedulerMs, cfg.scheduler.maxFailedRequestRate)) {
    reasons.push("too many failed scheduler requests");
  }
  if (rate(h.failedNeonVmMs, cfg.neonvm.maxFailedRequestRate)) {
    reasons.push("too many failed NeonVM requests");
  }
  return reasons;
}
