/**
 * Goal compute units from metrics, exactly as the reference computes them (§3.3): a CPU part from
 * load averages, a memory part from usage, an LFC part from the working-set estimate, and a
 * total-memory part; the goal is `ceil(max(round(cpu), mem, lfc))`. Pure: no I/O.
 * @module
 */
import type { ScalingConfig } from "../../api/agent_config.ts";
import type { Resources } from "../../api/quantity.ts";
import type { LfcMetrics, SystemMetrics } from "./metrics.ts";

/** The parts that make up the goal, in (fractional) compute units; absent parts are undefined. */
export interface GoalCuParts {
  /** From load average. */
  readonly cpu: number | undefined;
  /** From memory usage (and total memory). */
  readonly mem: number | undefined;
  /** From the LFC working set. */
  readonly lfc: number | undefined;
}

/** The computed goal. */
export interface GoalCu {
  /** Whole compute units wanted by metrics (0 without metrics). */
  readonly goalCu: number;
  /** True when system metrics and (if enabled) LFC metrics are present. */
  readonly hasAllMetrics: boolean;
  /** Components for scaling events and per-VM metrics. */
  readonly parts: GoalCuParts;
  /** Estimated working-set size in bytes, when there is one. */
  readonly wssBytes: number | undefined;
}

/** Pages of the LFC working-set estimate are 8 KiB. */
export const LFC_PAGE_BYTES = 8192;

/** Go's math.Round: half away from zero. */
export function roundHalfAway(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}

/**
 * The reference's `EstimateTrueWorkingSetSize`: the first point where the growth over the next
 * window exceeds `maxAllowedIncreaseFactor` times the growth over the previous one, else the last.
 */
export function estimateTrueWorkingSetSize(
  series: readonly number[],
  maxAllowedIncreaseFactor: number,
  initialOffset: number,
  windowSize: number,
): number {
  const w = windowSize - 1;
  for (let t = initialOffset; t < series.length - w; t++) {
    if (t - w < 0) continue;
    const d0 = Math.max(0, series[t]! - series[t - w]!);
    const d1 = Math.max(0, series[t + w]! - series[t]!);
    if (d1 > maxAllowedIncreaseFactor * d0) return series[t]!;
  }
  return series[series.length - 1]!;
}

/** The reference's `ProjectNextHighest`: the highest one-step linear projection of the series. */
export function projectNextHighest(series: readonly number[], projectLen: number): number {
  if (series.length === 0) return 0;
  let highest = series[0]!;
  for (let i = 1; i < series.length; i++) {
    const x0 = series[i - 1]!;
    const x1 = Math.max(x0, series[i]!);
    highest = Math.max(highest, x1 + (x1 - x0) * projectLen);
  }
  return highest;
}

/** Working-set size in bytes from LFC metrics, or undefined when the series is too short. */
export function estimateWssBytes(cfg: ScalingConfig, lfc: LfcMetrics): number | undefined {
  const series = lfc.approximateWorkingSetSizeBuckets;
  const offset = cfg.lfcMinWaitBeforeDownscaleMinutes - 1;
  const windowSize = cfg.lfcWindowSizeMinutes;
  if (series.length === 0 || series.length < offset + windowSize) return undefined;
  const estimate = cfg.lfcUseLargestWindow
    ? series[series.length - 1]!
    : estimateTrueWorkingSetSize(series, 3.0, offset, windowSize);
  let end = series.length;
  for (let i = Math.max(0, offset); i < series.length; i++) {
    if (series[i]! > estimate) {
      end = i;
      break;
    }
  }
  return projectNextHighest(series.slice(0, end), 0.5) * LFC_PAGE_BYTES;
}

/** Computes the goal CU from the latest metrics (§3.3). */
export function computeGoalCu(
  cfg: ScalingConfig,
  computeUnit: Resources,
  system: SystemMetrics | undefined,
  lfc: LfcMetrics | undefined,
): GoalCu {
  const hasAllMetrics = system !== undefined && (!cfg.enableLFCMetrics || lfc !== undefined);
  const cuVcpus = computeUnit.vCPUs / 1000;
  let cpu: number | undefined;
  let mem: number | undefined;
  let lfcCu: number | undefined;
  let wssBytes: number | undefined;
  if (system !== undefined) {
    const load1 = system.loadAverage1Min;
    const load5 = system.loadAverage5Min;
    const stable = cfg.cpuStableZoneRatio * load5;
    const mixed = stable + cfg.cpuMixedZoneRatio * load5;
    const diff = Math.abs(load1 - load5);
    let w: number;
    if (diff <= stable) w = 0;
    else if (diff >= mixed) w = 1;
    else w = (diff - stable) / (mixed - stable + 1e-6);
    const blended = w * load1 + (1 - w) * load5;
    cpu = blended / cfg.loadAverageFractionTarget / cuVcpus;
    mem = roundHalfAway(system.memoryUsageBytes / cfg.memoryUsageFractionTarget) / computeUnit.mem;
  }
  if (lfc !== undefined && cfg.enableLFCMetrics) {
    wssBytes = estimateWssBytes(cfg, lfc);
    lfcCu = wssBytes === undefined ? 0 : wssBytes / cfg.lfcToMemoryRatio / computeUnit.mem;
  }
  if (system !== undefined && wssBytes !== undefined) {
    const total = (Math.min(wssBytes, system.memoryCachedBytes) + system.memoryUsageBytes) /
      cfg.memoryTotalFractionTarget / computeUnit.mem;
    mem = Math.max(mem ?? 0, total);
  }
  const raw = Math.max(roundHalfAway(cpu ?? 0), mem ?? 0, lfcCu ?? 0);
  const goalCu = Number.isFinite(raw) ? Math.ceil(raw) : 0;
  return { goalCu, hasAllMetrics, parts: { cpu, mem, lfc: lfcCu }, wssBytes };
}
