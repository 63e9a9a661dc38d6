import assert from "node:assert/strict";
import fc from "fast-check";
import { DEFAULT_SCHEDULER_CONFIG, parseSchedulerConfig } from "./scheduler_config.ts";

Deno.test("scheduler config: reference defaults", () => {
  assert.deepEqual(DEFAULT_SCHEDULER_CONFIG, {
    watermark: 0.9,
    scoring: { minUsageScore: 0.5, maxUsageScore: 0, scorePeak: 0.8, randomize: true },
    schedulerName: "autoscale-scheduler",
    reconcileWorkers: 16,
    logSuccessiveFailuresThreshold: 10,
    startupEventHandlingTimeoutSeconds: 15,
    patchRetryWaitSeconds: 1,
    k8sCRUDTimeoutSeconds: 1,
    nodeMetricLabels: {},
    ignoredNamespaces: [],
  });
});

Deno.test("scheduler config: the reference file parses to the defaults", () => {
  const file = {
    watermark: 0.9,
    scoring: { minUsageScore: 0.5, maxUsageScore: 0, scorePeak: 0.8, Randomize: true },
    schedulerName: "autoscale-scheduler",
    reconcileWorkers: 16,
    logSuccessiveFailuresThreshold: 10,
    startupEventHandlingTimeoutSeconds: 15,
    patchRetryWaitSeconds: 1,
    k8sCRUDTimeoutSeconds: 1,
    nodeMetricLabels: {},
    ignoredNamespaces: [],
  };
  const r = parseSchedulerConfig(file);
  assert.ok(r.ok);
  assert.deepEqual(r.value, DEFAULT_SCHEDULER_CONFIG);
});

Deno.test("scheduler config: invalid values and unknown fields name their path", () => {
  const cases: [unknown, string][] = [
    [{ watermark: 0 }, "watermark"],
    [{ watermark: 1.5 }, "watermark"],
    [{ scoring: { scorePeak: 2 } }, "scoring.scorePeak"],
    [{ schedulerName: "" }, "schedulerName"],
    [{ reconcileWorkers: 0 }, "reconcileWorkers"],
    [{ bogus: 1 }, "(root)"],
  ];
  for (const [input, path] of cases) {
    const r = parseSchedulerConfig(input);
    assert.ok(!r.ok, JSON.stringify(input));
    assert.ok(r.error.paths.includes(path), `${JSON.stringify(input)} → ${r.error.paths}`);
  }
});

Deno.test("property: config parser never throws", () => {
  fc.assert(
    fc.property(fc.jsonValue(), (v) => {
      const r = parseSchedulerConfig(v);
      if (!r.ok) assert.equal(r.error.name, "ParseError");
    }),
    { numRuns: 2000 },
  );
});

Deno.test("deploy/scheduler: shipped config equals the reference defaults; extender wiring", async () => {
  const dir = new URL("../../deploy/scheduler/", import.meta.url);
  const json = JSON.parse(await Deno.readTextFile(new URL("autoscale-enforcer-config.json", dir)));
  const r = parseSchedulerConfig(json);
  assert.ok(r.ok);
  assert.deepEqual(r.value, DEFAULT_SCHEDULER_CONFIG);
  const { parse } = await import("yaml");
  const ks = parse(await Deno.readTextFile(new URL("kube-scheduler-config.yaml", dir)));
  assert.equal(ks.kind, "KubeSchedulerConfiguration");
  assert.equal(ks.profiles[0].schedulerName, "autoscale-scheduler");
  assert.equal(ks.extenders.length, 1);
  const ext = ks.extenders[0];
  assert.equal(ext.urlPrefix, "http://127.0.0.1:10299/scheduler");
  assert.equal(ext.filterVerb, "filter");
  assert.equal(ext.prioritizeVerb, "prioritize");
  assert.equal(ext.bindVerb, "bind");
  assert.equal(ext.nodeCacheCapable, true);
  assert.ok(ext.weight > 0);
});
