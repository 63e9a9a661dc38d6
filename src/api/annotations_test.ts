import assert from "node:assert/strict";
import fc from "fast-check";
import { parseJsonResult, parseOrThrow } from "./_parse.ts";
import {
  ANNOTATION_BOUNDS,
  ANNOTATION_CONFIG,
  ANNOTATION_RESOURCES_APPROVED,
  ANNOTATION_RESOURCES_REQUESTED,
  ANNOTATION_SCALING_UNIT,
  ANNOTATION_VM_OVERCOMMIT,
  ANNOTATION_VM_RESOURCES,
  ANNOTATION_VM_USAGE,
  BoundsAnnotationSchema,
  boundsProblems,
  encodeBoundsAnnotation,
  encodeResourcesAnnotation,
  encodeScalingConfigAnnotation,
  encodeVmOvercommitAnnotation,
  encodeVmResourcesAnnotation,
  encodeVmUsageAnnotation,
  FINALIZER,
  isLabelTrue,
  LABEL_AUTOSCALING_ENABLED,
  overcommitMilli,
  parseResourcesAnnotation,
  readJsonAnnotation,
  ScalingConfigAnnotationSchema,
  VmOvercommitAnnotationSchema,
  VmResourcesAnnotationSchema,
  vmResourcesFromSpec,
  VmUsageAnnotationSchema,
  vmUsageFromSpec,
} from "./annotations.ts";
import { VirtualMachineSchema } from "./virtualmachine.ts";

const GiB = 1024 ** 3;

Deno.test("annotation names are the reference's (§1.2, §2.6)", () => {
  assert.equal(ANNOTATION_SCALING_UNIT, "autoscaling.neon.tech/scaling-unit");
  assert.equal(
    ANNOTATION_RESOURCES_REQUESTED,
    "internal.autoscaling.neon.tech/resources-requested",
  );
  assert.equal(ANNOTATION_RESOURCES_APPROVED, "internal.autoscaling.neon.tech/resources-approved");
  assert.equal(ANNOTATION_VM_USAGE, "vm.neon.tech/usage");
  assert.equal(ANNOTATION_VM_RESOURCES, "vm.neon.tech/resources");
  assert.equal(ANNOTATION_VM_OVERCOMMIT, "vm.neon.tech/overcommit");
  assert.equal(ANNOTATION_BOUNDS, "autoscaling.neon.tech/bounds");
  assert.equal(ANNOTATION_CONFIG, "autoscaling.neon.tech/config");
  assert.equal(FINALIZER, "vm.neon.tech/finalizer");
  assert.ok(isLabelTrue({ [LABEL_AUTOSCALING_ENABLED]: "true" }, LABEL_AUTOSCALING_ENABLED));
  assert.ok(!isLabelTrue({ [LABEL_AUTOSCALING_ENABLED]: "True" }, LABEL_AUTOSCALING_ENABLED));
  assert.ok(!isLabelTrue(undefined, LABEL_AUTOSCALING_ENABLED));
});

Deno.test("Resources annotations: §1.1 encoding, any quantity decoded", () => {
  const r = parseResourcesAnnotation('{"vCPUs":0.25,"mem":"1Gi"}', "scaling-unit");
  assert.ok(r.ok);
  assert.deepEqual(r.value, { vCPUs: 250, mem: GiB });
  assert.equal(encodeResourcesAnnotation(r.value), '{"vCPUs":"250m","mem":"1Gi"}');
  assert.equal(encodeResourcesAnnotation({ vCPUs: 1000, mem: 4 * GiB }), '{"vCPUs":1,"mem":"4Gi"}');
  assert.equal(encodeResourcesAnnotation({ vCPUs: 1250, mem: 512 }), '{"vCPUs":"1250m","mem":512}');
});

Deno.test("vm.neon.tech/usage, /resources and /overcommit encode exactly", () => {
  const usage = '{"cpu":"250m","memory":"4Gi"}';
  const u = parseOrThrow(VmUsageAnnotationSchema, JSON.parse(usage), "usage");
  assert.deepEqual(u, { cpu: 250, memory: 4 * GiB });
  assert.equal(encodeVmUsageAnnotation(u), usage);
  assert.equal(
    encodeVmUsageAnnotation({ cpu: 2000, memory: 1536 * 1024 ** 2 }),
    '{"cpu":"2","memory":"1536Mi"}',
  );

  const res =
    '{"cpus":{"min":"250m","max":4,"use":1},"memorySlots":{"min":1,"max":8,"use":2},"memorySlotSize":"1Gi"}';
  const r = parseOrThrow(VmResourcesAnnotationSchema, JSON.parse(res), "resources");
  assert.deepEqual(r.cpus, { min: 250, max: 4000, use: 1000 });
  assert.equal(encodeVmResourcesAnnotation(r), res);

  const oc = '{"cpu":"2","memory":"1500m"}';
  const o = parseOrThrow(VmOvercommitAnnotationSchema, JSON.parse(oc), "overcommit");
  assert.deepEqual(o, { cpu: 2000, memory: 1500 });
  assert.equal(encodeVmOvercommitAnnotation(o), oc);
  assert.equal(encodeVmOvercommitAnnotation({ memory: 500 }), '{"memory":"500m"}');
  assert.deepEqual(overcommitMilli(undefined), { cpu: 1000, memory: 1000 });
  assert.deepEqual(overcommitMilli({ cpu: 2000 }), { cpu: 2000, memory: 1000 });
});

Deno.test("usage and resources annotations derive from a VM spec", () => {
  const vm = parseOrThrow(VirtualMachineSchema, {
    apiVersion: "vm.neon.tech/v1",
    kind: "VirtualMachine",
    metadata: { name: "x" },
    spec: {
      guest: {
        cpus: { min: "250m", max: 4, use: "1500m" },
        memorySlots: { min: 1, max: 8, use: 3 },
        memorySlotSize: "512Mi",
        rootDisk: { image: "i" },
      },
    },
  }, "vm");
  assert.equal(
    encodeVmUsageAnnotation(vmUsageFromSpec(vm.spec)),
    '{"cpu":"1500m","memory":"1536Mi"}',
  );
  assert.equal(
    encodeVmResourcesAnnotation(vmResourcesFromSpec(vm.spec)),
    '{"cpus":{"min":"250m","max":4,"use":"1500m"},"memorySlots":{"min":1,"max":8,"use":3},"memorySlotSize":"512Mi"}',
  );
});

Deno.test("bounds and config annotations", () => {
  const text = '{"min":{"cpu":"250m","mem":"1Gi"},"max":{"cpu":"4","mem":"16Gi"}}';
  const b = parseOrThrow(BoundsAnnotationSchema, JSON.parse(text), "bounds");
  assert.deepEqual(b, { min: { cpu: 250, mem: GiB }, max: { cpu: 4000, mem: 16 * GiB } });
  assert.equal(encodeBoundsAnnotation(b), text);
  assert.deepEqual(boundsProblems(b, GiB), []);
  assert.deepEqual(boundsProblems(b, 3 * GiB), [
    "bounds min.mem must be divisible by memorySlotSize",
    "bounds max.mem must be divisible by memorySlotSize",
  ]);
  const zero = parseJsonResult(
    BoundsAnnotationSchema,
    '{"min":{"cpu":0,"mem":"1Gi"},"max":{"cpu":"4","mem":0}}',
    "annotation bounds",
  );
  assert.ok(!zero.ok);
  assert.deepEqual(zero.error.paths, ["min.cpu", "max.mem"]);

  const cfg = '{"loadAverageFractionTarget":0.9,"enableLFCMetrics":true,"cpuMixedZoneRatio":0.1}';
  const c = parseOrThrow(ScalingConfigAnnotationSchema, JSON.parse(cfg), "config");
  assert.equal(encodeScalingConfigAnnotation(c), cfg);
  const badCfg = parseJsonResult(
    ScalingConfigAnnotationSchema,
    '{"memoryUsageFractionTarget":1.0}',
    "annotation config",
  );
  assert.ok(!badCfg.ok && badCfg.error.paths.includes("memoryUsageFractionTarget"));
});

Deno.test("readJsonAnnotation: absent, malformed, valid", () => {
  assert.equal(readJsonAnnotation({}, ANNOTATION_VM_USAGE, VmUsageAnnotationSchema), undefined);
  const bad = readJsonAnnotation(
    { [ANNOTATION_VM_USAGE]: "{" },
    ANNOTATION_VM_USAGE,
    VmUsageAnnotationSchema,
  );
  assert.ok(bad && !bad.ok && bad.error.message.includes("vm.neon.tech/usage"));
  const good = readJsonAnnotation(
    { [ANNOTATION_VM_USAGE]: '{"cpu":1,"memory":"1Gi"}' },
    ANNOTATION_VM_USAGE,
    VmUsageAnnotationSchema,
  );
  assert.ok(good?.ok && good.value.cpu === 1000);
});

Deno.test("property: annotation parsers never throw; encoders are fixed points", () => {
  const schemas = [
    VmUsageAnnotationSchema,
    VmResourcesAnnotationSchema,
    VmOvercommitAnnotationSchema,
    BoundsAnnotationSchema,
    ScalingConfigAnnotationSchema,
  ];
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.json()), fc.constantFrom(...schemas), (text, schema) => {
      const r = parseJsonResult(schema, text, "annotation");
      if (!r.ok) assert.ok(r.error.message.startsWith("Cannot parse annotation"));
    }),
    { numRuns: 300 },
  );
  const milli = fc.integer({ min: 1, max: 512_000 });
  const bytes = fc.integer({ min: 1, max: 2 ** 46 });
  fc.assert(
    fc.property(milli, milli, milli, bytes, fc.integer({ min: 1, max: 512 }), (a, b, c, m, s) => {
      const res = {
        cpus: { min: a, max: b, use: c },
        memorySlots: { min: s, max: s, use: s },
        memorySlotSize: m,
      };
      const text = encodeVmResourcesAnnotation(res);
      assert.deepEqual(parseOrThrow(VmResourcesAnnotationSchema, JSON.parse(text), "r"), res);
      const usage = { cpu: a, memory: m };
      const ut = encodeVmUsageAnnotation(usage);
      assert.deepEqual(parseOrThrow(VmUsageAnnotationSchema, JSON.parse(ut), "u"), usage);
      const bounds = { min: { cpu: a, mem: m }, max: { cpu: b, mem: m } };
      const bt = encodeBoundsAnnotation(bounds);
      assert.deepEqual(parseOrThrow(BoundsAnnotationSchema, JSON.parse(bt), "b"), bounds);
    }),
    { numRuns: 300 },
  );
});
