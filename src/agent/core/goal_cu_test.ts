/** Tests of goal compute units against the reference's own examples (§3.3). */
import assert from "node:assert/strict";
import { defaultAgentConfig, type ScalingConfig } from "../../api/agent_config.ts";
import { GiB, MiB } from "../../api/quantity.ts";
import {
  computeGoalCu,
  estimateTrueWorkingSetSize,
  estimateWssBytes,
  projectNextHighest,
} from "./goal_cu.ts";
import type { SystemMetrics } from "./metrics.ts";

const CU = { vCPUs: 250, mem: GiB };
const base: ScalingConfig = {
  ...defaultAgentConfig().scaling.defaultConfig,
  loadAverageFractionTarget: 1,
};
const sys = (load1: number, load5 = 0, usage = 0): SystemMetrics => ({
  loadAverage1Min: load1,
  loadAverage5Min: load5,
  memoryUsageBytes: usage,
  memoryCachedBytes: 0,
});
const near = (a: number | undefined, b: number) =>
  assert.ok(a !== undefined && Math.abs(a - b) < 1e-4, `${a} ≉ ${b}`);

Deno.test("cpu part matches the reference examples", () => {
  near(computeGoalCu(base, CU, sys(0.2), undefined).parts.cpu, 0.8);
  near(computeGoalCu(base, CU, sys(1), undefined).parts.cpu, 4);
  const stable = { ...base, cpuStableZoneRatio: 0.5 };
  near(computeGoalCu(stable, CU, sys(0.7, 0), undefined).parts.cpu, 2.8);
  near(computeGoalCu(stable, CU, sys(1, 0.7), undefined).parts.cpu, 2.8);
  const mixed = { ...base, cpuStableZoneRatio: 0.5, cpuMixedZoneRatio: 0.5 };
  near(computeGoalCu(mixed, CU, sys(1.75, 1), undefined).parts.cpu, 5.499997);
});

Deno.test("goal is ceil(max(round(cpu), mem)) and missing metrics give 0", () => {
  // cpu 0.8 rounds to 1; mem 1.5Gi/0.75 = 2Gi = 2 CU → goal 2.
  const g = computeGoalCu(
    { ...base, memoryUsageFractionTarget: 0.75 },
    CU,
    sys(0.2, 0, 1.5 * GiB),
    undefined,
  );
  assert.equal(g.goalCu, 2);
  assert.equal(g.hasAllMetrics, true);
  // cpu 2.4 rounds to 2 before the ceil ("historical compatibility").
  assert.equal(computeGoalCu(base, CU, sys(0.6), undefined).goalCu, 2);
  // cpu 2.5 rounds half away from zero to 3.
  assert.equal(computeGoalCu(base, CU, sys(0.625), undefined).goalCu, 3);
  const none = computeGoalCu(base, CU, undefined, undefined);
  assert.deepEqual(none, {
    goalCu: 0,
    hasAllMetrics: false,
    parts: { cpu: undefined, mem: undefined, lfc: undefined },
    wssBytes: undefined,
  });
  assert.equal(
    computeGoalCu({ ...base, enableLFCMetrics: true }, CU, sys(1), undefined).hasAllMetrics,
    false,
  );
});

Deno.test("working-set estimator and projection", () => {
  // Flat then a jump at index 6: growth over the next window (w=4) exceeds 3× the previous.
  const s = [1, 2, 3, 4, 5, 5, 5, 5, 5, 30, 31];
  assert.equal(estimateTrueWorkingSetSize(s, 3, 4, 5), 5);
  assert.equal(estimateTrueWorkingSetSize([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 3, 4, 5), 10);
  assert.equal(projectNextHighest([1, 3, 4], 0.5), 4.5);
  assert.equal(projectNextHighest([5, 1], 0.5), 5);
  // LFC part: estimate 5 pages → end at first index ≥ offset above 5 (9) → projection of
  // [1..5,5,5,5,5] = 5.5 pages.
  const cfg = { ...base, enableLFCMetrics: true };
  assert.equal(
    estimateWssBytes(cfg, {
      cacheHitsTotal: 0,
      cacheMissesTotal: 0,
      cacheWritesTotal: 0,
      approximateWorkingSetSizeBuckets: s,
    }),
    5.5 * 8192,
  );
  // Too short a series: no estimate, LFC part 0.
  const g = computeGoalCu(cfg, CU, sys(0), {
    cacheHitsTotal: 0,
    cacheMissesTotal: 0,
    cacheWritesTotal: 0,
    approximateWorkingSetSizeBuckets: [1, 2],
  });
  assert.equal(g.parts.lfc, 0);
  assert.equal(g.wssBytes, undefined);
});

Deno.test("LFC and total-memory parts", () => {
  const cfg = {
    ...base,
    enableLFCMetrics: true,
    lfcToMemoryRatio: 0.5,
    memoryTotalFractionTarget: 0.5,
  };
  const pages = (1 * GiB) / 8192; // a flat 1 GiB working set
  const g = computeGoalCu(cfg, CU, { ...sys(0, 0, 512 * MiB), memoryCachedBytes: 256 * MiB }, {
    cacheHitsTotal: 0,
    cacheMissesTotal: 0,
    cacheWritesTotal: 0,
    approximateWorkingSetSizeBuckets: Array(10).fill(pages),
  });
  near(g.parts.lfc, 2); // 1 GiB / 0.5
  near(g.parts.mem, 1.5); // max(0.5/0.75, (min(1Gi, 256Mi) + 512Mi)/0.5 = 1.5)
  assert.equal(g.goalCu, 2);
});
