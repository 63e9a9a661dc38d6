/**
 * Tests of the agent config schema: config_map defaults, unknown-field rejection with paths,
 * validation of zero values, overrides, the bounds annotation and our downscale stabilization
 * field; reads the shipped deploy/ agent configs (read-only file I/O).
 */
import assert from "node:assert/strict";
import { ParseError } from "../lib/errors.ts";
import {
  defaultAgentConfig,
  parseAgentConfig,
  ScalingConfigOverridesSchema,
  VmBoundsAnnotationSchema,
  withOverrides,
} from "./agent_config.ts";
import { GiB } from "./quantity.ts";

// The config_map.yaml of the reference, verbatim in structure.
const REFERENCE_CONFIG = {
  refereshStateIntervalSeconds: 5,
  scaling: {
    computeUnit: { vCPUs: 0.25, mem: "1Gi" },
    defaultConfig: {
      loadAverageFractionTarget: 0.9,
      memoryUsageFractionTarget: 0.75,
      memoryTotalFractionTarget: 0.9,
      enableLFCMetrics: false,
      lfcUseLargestWindow: false,
      lfcToMemoryRatio: 0.75,
      lfcWindowSizeMinutes: 5,
      lfcMinWaitBeforeDownscaleMinutes: 5,
      cpuStableZoneRatio: 0,
      cpuMixedZoneRatio: 0,
    },
  },
  billing: {
    cpuMetricName: "effective_compute_seconds",
    activeTimeMetricName: "active_time_seconds",
    collectEverySeconds: 4,
    accumulateEverySeconds: 24,
    clients: {},
  },
  scalingEvents: {
    cuMultiplier: 0.25,
    rereportThreshold: 0.25,
    regionName: "replaceme",
    clients: {},
  },
  monitor: {
    serverPort: 10301,
    responseTimeoutSeconds: 5,
    connectionTimeoutSeconds: 4,
    connectionRetryMinWaitSeconds: 5,
    unhealthyAfterSilenceDurationSeconds: 20,
    unhealthyStartupGracePeriodSeconds: 20,
    maxHealthCheckSequentialFailuresSeconds: 30,
    retryDeniedDownscaleSeconds: 5,
    requestedUpscaleValidSeconds: 10,
    retryFailedRequestSeconds: 3,
    maxFailedRequestRate: { intervalSeconds: 120, threshold: 2 },
  },
  metrics: {
    system: { port: 9100, requestTimeoutSeconds: 2, secondsBetweenRequests: 5 },
    lfc: { port: 9499, requestTimeoutSeconds: 5, secondsBetweenRequests: 15 },
  },
  scheduler: {
    schedulerName: "autoscale-scheduler",
    requestTimeoutSeconds: 2,
    requestAtLeastEverySeconds: 15,
    retryFailedRequestSeconds: 3,
    retryDeniedUpscaleSeconds: 2,
    requestPort: 10299,
    maxFailedRequestRate: { intervalSeconds: 120, threshold: 5 },
  },
  dumpState: { port: 10300, timeoutSeconds: 5 },
  neonvm: {
    requestTimeoutSeconds: 10,
    retryFailedRequestSeconds: 5,
    maxFailedRequestRate: { intervalSeconds: 120, threshold: 2 },
  },
};

Deno.test("the reference config_map parses and equals the built-in defaults", () => {
  const parsed = parseAgentConfig(REFERENCE_CONFIG);
  assert.deepEqual(parsed, defaultAgentConfig());
  assert.deepEqual(parsed.scaling.computeUnit, { vCPUs: 250, mem: GiB });
  assert.equal(parsed.scheduler.requestAtLeastEverySeconds, 15);
  assert.equal(parsed.dumpState.port, 10300);
});

Deno.test("unknown fields are rejected with their full path", () => {
  const bad = structuredClone(REFERENCE_CONFIG) as Record<string, unknown>;
  (bad.monitor as Record<string, unknown>).serverPrt = 1;
  bad.extra = true;
  assert.throws(() => parseAgentConfig(bad), (e: unknown) => {
    assert.ok(e instanceof ParseError);
    assert.deepEqual([...e.paths].sort(), ["extra", "monitor.serverPrt"]);
    return true;
  });
});

Deno.test("zero timings, zero compute unit and empty names are rejected", () => {
  for (
    const [patch, path] of [
      [{ monitor: { responseTimeoutSeconds: 0 } }, "monitor.responseTimeoutSeconds"],
      [{ scaling: { computeUnit: { vCPUs: 0, mem: "1Gi" } } }, "scaling.computeUnit"],
      [{ scheduler: { schedulerName: "" } }, "scheduler.schedulerName"],
      [{ scalingEvents: { regionName: "" } }, "scalingEvents.regionName"],
    ] as const
  ) {
    assert.throws(() => parseAgentConfig(patch), (e: unknown) => {
      assert.ok(e instanceof ParseError);
      assert.ok(e.paths.includes(path), `${e.paths} should include ${path}`);
      return true;
    });
  }
});

Deno.test("a partial config takes the defaults for the rest", () => {
  const c = parseAgentConfig({ monitor: { serverPort: 12345 } });
  assert.equal(c.monitor.serverPort, 12345);
  assert.equal(c.monitor.responseTimeoutSeconds, 5);
  assert.equal(c.scaling.defaultConfig.memoryUsageFractionTarget, 0.75);
});

Deno.test("config annotation overrides field by field; unknown fields ignored as Go does", () => {
  const d = defaultAgentConfig().scaling.defaultConfig;
  const o = ScalingConfigOverridesSchema.parse({ enableLFCMetrics: true, lfcToMemoryRatio: 0.5 });
  const m = withOverrides(d, o);
  assert.equal(m.enableLFCMetrics, true);
  assert.equal(m.lfcToMemoryRatio, 0.5);
  assert.equal(m.loadAverageFractionTarget, 0.9);
  assert.deepEqual(ScalingConfigOverridesSchema.parse({ nope: 1 }), {});
  // Out-of-range windows from an annotation are clamped to what the estimator accepts.
  const w = withOverrides(d, ScalingConfigOverridesSchema.parse({ lfcWindowSizeMinutes: 1 }));
  assert.equal(w.lfcWindowSizeMinutes, 2);
  assert.ok(w.lfcMinWaitBeforeDownscaleMinutes >= 2);
  assert.equal(
    ScalingConfigOverridesSchema.safeParse({ memoryUsageFractionTarget: 1 }).success,
    false,
  );
});

Deno.test("bounds annotation decodes quantities and rejects zeros", () => {
  const b = VmBoundsAnnotationSchema.parse({
    min: { cpu: "250m", mem: "1Gi" },
    max: { cpu: 2, mem: "8Gi" },
  });
  assert.deepEqual(b, { min: { cpu: 250, mem: GiB }, max: { cpu: 2000, mem: 8 * GiB } });
  assert.equal(
    VmBoundsAnnotationSchema.safeParse({ min: { cpu: 0, mem: "1Gi" }, max: { cpu: 1, mem: "1Gi" } })
      .success,
    false,
  );
});

Deno.test("scaling.downscaleStabilizationSeconds: our extension, agent-wide, 0 by default", () => {
  assert.equal(defaultAgentConfig().scaling.downscaleStabilizationSeconds, 0);
  const c = parseAgentConfig({ scaling: { downscaleStabilizationSeconds: 60 } });
  assert.equal(c.scaling.downscaleStabilizationSeconds, 60);
  assert.deepEqual(c.scaling.computeUnit, { vCPUs: 250, mem: GiB }, "the rest keeps its defaults");
  for (const bad of [-1, 3601, "60", null]) {
    assert.throws(
      () => parseAgentConfig({ scaling: { downscaleStabilizationSeconds: bad } }),
      (e: unknown) => {
        assert.ok(e instanceof ParseError);
        assert.deepEqual(e.paths, ["scaling.downscaleStabilizationSeconds"]);
        return true;
      },
    );
  }
  // Not a per-VM knob: the default ScalingConfig rejects it and the annotation ignores it (the
  // annotation's wire format stays the reference's).
  assert.throws(
    () => parseAgentConfig({ scaling: { defaultConfig: { downscaleStabilizationSeconds: 1 } } }),
    (e: unknown) => e instanceof ParseError,
  );
  assert.deepEqual(ScalingConfigOverridesSchema.parse({ downscaleStabilizationSeconds: 60 }), {});
});

Deno.test("deploy/local's agent config is deploy/agent's with a 60 s downscale window", async () => {
  const read = async (path: string): Promise<unknown> =>
    JSON.parse(await Deno.readTextFile(new URL(`../../${path}`, import.meta.url)));
  const base = await read("deploy/agent/config.json");
  const local = await read("deploy/local/agent-config.json");
  const baseCfg = parseAgentConfig(base);
  const localCfg = parseAgentConfig(local);
  assert.equal(baseCfg.scaling.downscaleStabilizationSeconds, 0, "the base keeps the reference");
  assert.equal(localCfg.scaling.downscaleStabilizationSeconds, 60);
  const withoutWindow = structuredClone(local) as { scaling: Record<string, unknown> };
  delete withoutWindow.scaling.downscaleStabilizationSeconds;
  assert.deepEqual(withoutWindow, base, "deploy/local/agent-config.json drifted from the base");
});
