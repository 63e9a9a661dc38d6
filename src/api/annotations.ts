/**
 * Every label, annotation and finalizer name of the NeonVM / autoscaling protocol (reference §1.2,
 * §2.6), and zod schemas plus exact encoders for every JSON annotation payload. The encoders write
 * the reference's bytes (Go struct field order, Go `resource.Quantity` strings, MilliCPU and Bytes
 * as in §1.1) because peers compare these strings (the scheduler patches only when the text
 * differs).
 * Pure: no I/O.
 * @module
 */
import { z } from "zod";
import {
  type Bytes,
  BytesSchema,
  encodeMilliCpu,
  encodeResources,
  formatBinarySi,
  formatMilliCpu,
  type MilliCpu,
  MilliCpuSchema,
  type Resources,
  ResourcesSchema,
} from "./quantity.ts";
import { parseJsonResult, type ParseResult } from "./_parse.ts";
import type { Overcommit, VirtualMachineSpec } from "./virtualmachine.ts";

// ---------------------------------------------------------------------------------------------
// Names

/** Label: `"true"` enables agent scaling and the scheduler's annotation handling. */
export const LABEL_AUTOSCALING_ENABLED = "autoscaling.neon.tech/enabled";
/** Label: `"true"` lets the scheduler trigger migrations of the VM. */
export const LABEL_AUTO_MIGRATION_ENABLED = "autoscaling.neon.tech/auto-migration-enabled";
/** Label: `"true"` makes the pod migratable even without auto-migration (test aid). */
export const LABEL_TESTING_ONLY_ALWAYS_MIGRATE =
  "autoscaling.neon.tech/testing-only-always-migrate";
/** Label on VirtualMachineMigrations the scheduler created (value `"true"`). */
export const LABEL_CREATED_BY_SCHEDULER = "autoscaling.neon.tech/created-by-scheduler";
/** Annotation on the VM: JSON bounds overriding the agent's min/max. */
export const ANNOTATION_BOUNDS = "autoscaling.neon.tech/bounds";
/** Annotation on the VM: JSON ScalingConfig overrides. */
export const ANNOTATION_CONFIG = "autoscaling.neon.tech/config";
/** Annotation VM → pod: the agent's compute unit (JSON Resources), written by the scheduler. */
export const ANNOTATION_SCALING_UNIT = "autoscaling.neon.tech/scaling-unit";
/** Annotation on the VM: endpoint id for billing. */
export const ANNOTATION_BILLING_ENDPOINT_ID = "autoscaling.neon.tech/billing-endpoint-id";
/** Annotation VM → pod: resources the agent asked for (JSON Resources). */
export const ANNOTATION_RESOURCES_REQUESTED = "internal.autoscaling.neon.tech/resources-requested";
/** Annotation VM → pod: resources the scheduler approved (JSON Resources). */
export const ANNOTATION_RESOURCES_APPROVED = "internal.autoscaling.neon.tech/resources-approved";
/** Label on runner pods: the VM's name. */
export const LABEL_VM_NAME = "vm.neon.tech/name";
/** Annotation on runner pods: JSON `{"cpu","memory"}` in use. */
export const ANNOTATION_VM_USAGE = "vm.neon.tech/usage";
/** Annotation on runner pods: JSON `{"cpus","memorySlots","memorySlotSize"}`. */
export const ANNOTATION_VM_RESOURCES = "vm.neon.tech/resources";
/** Annotation on runner pods (only when `spec.overcommit` is set): JSON `{"cpu"?,"memory"?}`. */
export const ANNOTATION_VM_OVERCOMMIT = "vm.neon.tech/overcommit";
/** Finalizer on VirtualMachines and VirtualMachineMigrations. */
export const FINALIZER = "vm.neon.tech/finalizer";
/** Label on runner pods, value {@linkcode APP_NAME_NEONVM}. */
export const LABEL_APP_NAME = "app.kubernetes.io/name";
/** Value of {@linkcode LABEL_APP_NAME} on runner pods. */
export const APP_NAME_NEONVM = "NeonVM";
/** Annotation on runner pods, value {@linkcode RUNNER_CONTAINER_NAME}. */
export const ANNOTATION_DEFAULT_CONTAINER = "kubectl.kubernetes.io/default-container";
/** Name of the runner container (default container of runner pods). */
export const RUNNER_CONTAINER_NAME = "neonvm-runner";
/** kubectl's annotation, never copied from the VM to the pod. */
export const ANNOTATION_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration";
/** Multus: requested networks (`<ns>/<nad>@<iface>`). */
export const ANNOTATION_MULTUS_NETWORKS = "k8s.v1.cni.cncf.io/networks";
/** Multus: network status (written by Multus). */
export const ANNOTATION_MULTUS_NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status";
/** Multus: legacy network status (written by Multus). */
export const ANNOTATION_MULTUS_NETWORKS_STATUS = "k8s.v1.cni.cncf.io/networks-status";
/** Label on VMs: endpoint id (metrics labels, scaling events). */
export const LABEL_ENDPOINT_ID = "neon/endpoint-id";
/** Label on VMs: project id (metrics labels). */
export const LABEL_PROJECT_ID = "neon/project-id";

/** Pod annotations the controller's VM → pod sync neither copies nor removes (§1.2). */
export const POD_SYNC_IGNORED_ANNOTATIONS: readonly string[] = [
  ANNOTATION_MULTUS_NETWORKS,
  ANNOTATION_MULTUS_NETWORK_STATUS,
  ANNOTATION_MULTUS_NETWORKS_STATUS,
];

/** True when `labels[key] === "true"` (how every boolean label is read). */
export function isLabelTrue(
  labels: Readonly<Record<string, string>> | undefined,
  key: string,
): boolean {
  return labels?.[key] === "true";
}

// ---------------------------------------------------------------------------------------------
// Resources annotations (scaling-unit, resources-requested, resources-approved)

/** Payload of scaling-unit / resources-requested / resources-approved: `{"vCPUs","mem"}`. */
export const ResourcesAnnotationSchema = ResourcesSchema;

/** Exact text of a Resources annotation (`{"vCPUs":0.25 → "250m", "mem":"1Gi"}` order). */
export function encodeResourcesAnnotation(r: Resources): string {
  return JSON.stringify(encodeResources(r));
}

/** Parses a Resources annotation text. */
export function parseResourcesAnnotation(text: string, what: string): ParseResult<Resources> {
  return parseJsonResult(ResourcesAnnotationSchema, text, `annotation ${what}`);
}

// ---------------------------------------------------------------------------------------------
// vm.neon.tech/usage

/** `{"cpu": Quantity, "memory": Quantity}`, decoded to MilliCPU and bytes. */
export const VmUsageAnnotationSchema = z.object({ cpu: MilliCpuSchema, memory: BytesSchema });
/** Decoded usage annotation. */
export type VmUsageAnnotation = z.infer<typeof VmUsageAnnotationSchema>;

/** Exact text of `vm.neon.tech/usage`: Go quantities, e.g. `{"cpu":"250m","memory":"4Gi"}`. */
export function encodeVmUsageAnnotation(u: VmUsageAnnotation): string {
  return JSON.stringify({ cpu: formatMilliCpu(u.cpu), memory: formatBinarySi(u.memory) });
}

/** The usage annotation for a VM spec (`cpus.use`, `memorySlots.use × memorySlotSize`). */
export function vmUsageFromSpec(spec: VirtualMachineSpec): VmUsageAnnotation {
  const g = spec.guest;
  return { cpu: g.cpus.use, memory: g.memorySlots.use * g.memorySlotSize };
}

// ---------------------------------------------------------------------------------------------
// vm.neon.tech/resources

const slotCount = z.number().int().min(0);

/** `{"cpus":{min,max,use},"memorySlots":{min,max,use},"memorySlotSize":Q}` decoded. */
export const VmResourcesAnnotationSchema = z.object({
  cpus: z.object({ min: MilliCpuSchema, max: MilliCpuSchema, use: MilliCpuSchema }),
  memorySlots: z.object({ min: slotCount, max: slotCount, use: slotCount }),
  memorySlotSize: BytesSchema,
});
/** Decoded `vm.neon.tech/resources`. */
export type VmResourcesAnnotation = z.infer<typeof VmResourcesAnnotationSchema>;

/** Exact text of `vm.neon.tech/resources` (MilliCPU §1.1 encoding, slot counts, Go quantity). */
export function encodeVmResourcesAnnotation(r: VmResourcesAnnotation): string {
  return JSON.stringify({
    cpus: {
      min: encodeMilliCpu(r.cpus.min),
      max: encodeMilliCpu(r.cpus.max),
      use: encodeMilliCpu(r.cpus.use),
    },
    memorySlots: { min: r.memorySlots.min, max: r.memorySlots.max, use: r.memorySlots.use },
    memorySlotSize: formatBinarySi(r.memorySlotSize),
  });
}

/** The resources annotation for a VM spec. */
export function vmResourcesFromSpec(spec: VirtualMachineSpec): VmResourcesAnnotation {
  const g = spec.guest;
  return {
    cpus: { min: g.cpus.min, max: g.cpus.max, use: g.cpus.use },
    memorySlots: { min: g.memorySlots.min, max: g.memorySlots.max, use: g.memorySlots.use },
    memorySlotSize: g.memorySlotSize,
  };
}

// ---------------------------------------------------------------------------------------------
// vm.neon.tech/overcommit

/** `{"cpu"?: Q, "memory"?: Q}` decoded to thousandths (`"2"` → 2000; absent means 1000). */
export const VmOvercommitAnnotationSchema = z.object({
  cpu: MilliCpuSchema.optional(),
  memory: MilliCpuSchema.optional(),
});
/** Decoded overcommit annotation (thousandths). */
export type VmOvercommitAnnotation = z.infer<typeof VmOvercommitAnnotationSchema>;

/** Exact text of `vm.neon.tech/overcommit`: Go quantities, absent fields omitted. */
export function encodeVmOvercommitAnnotation(o: VmOvercommitAnnotation | Overcommit): string {
  const out: { cpu?: string; memory?: string } = {};
  if (o.cpu !== undefined) out.cpu = formatMilliCpu(o.cpu);
  if (o.memory !== undefined) out.memory = formatMilliCpu(o.memory);
  return JSON.stringify(out);
}

/** Overcommit factors in thousandths, defaulting to 1000 (= 1.0) when absent. */
export function overcommitMilli(o: VmOvercommitAnnotation | undefined): {
  cpu: number;
  memory: number;
} {
  return { cpu: o?.cpu ?? 1000, memory: o?.memory ?? 1000 };
}

// ---------------------------------------------------------------------------------------------
// autoscaling.neon.tech/bounds and autoscaling.neon.tech/config

const BoundsSideSchema = z.object({ cpu: MilliCpuSchema, mem: BytesSchema });

/** `{"min":{"cpu","mem"},"max":{"cpu","mem"}}`; all four non-zero. */
export const BoundsAnnotationSchema = z.object({ min: BoundsSideSchema, max: BoundsSideSchema })
  .superRefine((b, ctx) => {
    for (const side of ["min", "max"] as const) {
      for (const f of ["cpu", "mem"] as const) {
        if (b[side][f] === 0) {
          ctx.addIssue({ code: "custom", message: "must be non-zero", path: [side, f] });
        }
      }
    }
  });
/** Decoded bounds: MilliCPU and bytes. */
export type BoundsAnnotation = z.infer<typeof BoundsAnnotationSchema>;

/** Exact text of `autoscaling.neon.tech/bounds` (Go struct order, Go quantity strings). */
export function encodeBoundsAnnotation(b: BoundsAnnotation): string {
  const side = (s: { cpu: MilliCpu; mem: Bytes }) => ({
    cpu: formatMilliCpu(s.cpu),
    mem: formatBinarySi(s.mem),
  });
  return JSON.stringify({ min: side(b.min), max: side(b.max) });
}

/** Extra rule of the bounds annotation: memory bounds must be whole slots. */
export function boundsProblems(b: BoundsAnnotation, memorySlotSizeBytes: Bytes): string[] {
  const out: string[] = [];
  if (memorySlotSizeBytes > 0) {
    if (b.min.mem % memorySlotSizeBytes !== 0) {
      out.push("bounds min.mem must be divisible by memorySlotSize");
    }
    if (b.max.mem % memorySlotSizeBytes !== 0) {
      out.push("bounds max.mem must be divisible by memorySlotSize");
    }
  }
  if (b.min.cpu > b.max.cpu) out.push("bounds min.cpu must not exceed max.cpu");
  if (b.min.mem > b.max.mem) out.push("bounds min.mem must not exceed max.mem");
  return out;
}

/**
 * `autoscaling.neon.tech/config`: any subset of ScalingConfig (§3.2), each field validated as in
 * the reference. Unknown keys are ignored, as Go's `json.Unmarshal` does.
 */
export const ScalingConfigAnnotationSchema = z.object({
  loadAverageFractionTarget: z.number().min(0).lt(2).optional(),
  memoryUsageFractionTarget: z.number().min(0).lt(1).optional(),
  memoryTotalFractionTarget: z.number().min(0).lt(1).optional(),
  enableLFCMetrics: z.boolean().optional(),
  lfcUseLargestWindow: z.boolean().optional(),
  lfcToMemoryRatio: z.number().min(0).optional(),
  lfcMinWaitBeforeDownscaleMinutes: z.number().int().min(0).optional(),
  lfcWindowSizeMinutes: z.number().int().min(0).optional(),
  cpuStableZoneRatio: z.number().min(0).optional(),
  cpuMixedZoneRatio: z.number().min(0).optional(),
});
/** Decoded config annotation. */
export type ScalingConfigAnnotation = z.infer<typeof ScalingConfigAnnotationSchema>;

const SCALING_CONFIG_ORDER = [
  "loadAverageFractionTarget",
  "memoryUsageFractionTarget",
  "memoryTotalFractionTarget",
  "enableLFCMetrics",
  "lfcUseLargestWindow",
  "lfcToMemoryRatio",
  "lfcMinWaitBeforeDownscaleMinutes",
  "lfcWindowSizeMinutes",
  "cpuStableZoneRatio",
  "cpuMixedZoneRatio",
] as const;

/** Exact text of `autoscaling.neon.tech/config` (Go struct order, absent fields omitted). */
export function encodeScalingConfigAnnotation(c: ScalingConfigAnnotation): string {
  const out: Record<string, unknown> = {};
  for (const k of SCALING_CONFIG_ORDER) if (c[k] !== undefined) out[k] = c[k];
  return JSON.stringify(out);
}

// ---------------------------------------------------------------------------------------------
// Reading annotations from an object

/** Reads and parses a JSON annotation; `undefined` when absent, a typed error when malformed. */
export function readJsonAnnotation<S extends z.ZodType>(
  annotations: Readonly<Record<string, string>> | undefined,
  key: string,
  schema: S,
): ParseResult<z.output<S>> | undefined {
  const text = annotations?.[key];
  if (text === undefined) return undefined;
  return parseJsonResult(schema, text, `annotation ${key}`);
}
