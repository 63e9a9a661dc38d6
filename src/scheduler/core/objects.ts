/**
 * Turns Kubernetes objects (Node, Pod, VirtualMachine, VirtualMachineMigration) into the small
 * records the accounting works on, following reference §4.2 and the §1.2 annotation protocol.
 * Annotation JSON is parsed with zod here; a bad annotation is a typed error, never a throw.
 * Pure: no I/O, no clocks.
 * @module
 */
import { z } from "zod";
import type { SchedNode, SchedPod } from "../../api/extender.ts";
import {
  ANNOTATION_RESOURCES_APPROVED,
  ANNOTATION_RESOURCES_REQUESTED,
  ANNOTATION_SCALING_UNIT,
  ANNOTATION_VM_OVERCOMMIT,
  ANNOTATION_VM_RESOURCES,
  LABEL_AUTO_MIGRATION_ENABLED,
  LABEL_AUTOSCALING_ENABLED,
  LABEL_CREATED_BY_SCHEDULER,
  LABEL_TESTING_ONLY_ALWAYS_MIGRATE,
} from "../../api/annotations.ts";
import { parseBytes, parseMilliCpu, ResourcesSchema } from "../../api/quantity.ts";
import { NEONVM_API_VERSION } from "../../api/virtualmachine.ts";
import { ParseError } from "../../lib/errors.ts";
import { NO_OVERCOMMIT, type Res } from "./resources.ts";

// The §1.2 / §2.6 names are defined once, in src/api; these are the scheduler's short aliases.
/** Annotation: the agent's compute unit (JSON Resources). */
export const ANN_SCALING_UNIT = ANNOTATION_SCALING_UNIT;
/** Annotation: the agent's last requested resources (JSON Resources). */
export const ANN_REQUESTED = ANNOTATION_RESOURCES_REQUESTED;
/** Annotation: resources the scheduler approved (JSON Resources). */
export const ANN_APPROVED = ANNOTATION_RESOURCES_APPROVED;
/** Pod annotation written by the controller: `{"cpus":{…},"memorySlots":{…},"memorySlotSize":Q}`. */
export const ANN_VM_RESOURCES = ANNOTATION_VM_RESOURCES;
/** Pod annotation written by the controller: `{"cpu"?:Q,"memory"?:Q}` overcommit factors. */
export const ANN_OVERCOMMIT = ANNOTATION_VM_OVERCOMMIT;
/** Label: `"true"` lets the scheduler migrate the VM. */
export const LABEL_AUTO_MIGRATION = LABEL_AUTO_MIGRATION_ENABLED;
/** Label: `"true"` makes the VM migratable regardless (test aid). */
export const LABEL_ALWAYS_MIGRATE = LABEL_TESTING_ONLY_ALWAYS_MIGRATE;
export { LABEL_AUTOSCALING_ENABLED, LABEL_CREATED_BY_SCHEDULER, NEONVM_API_VERSION };

/** A node: allocatable totals and watermark. */
export interface NodeInfo {
  /** Node name. */
  readonly name: string;
  /** `status.allocatable` cpu / memory. */
  readonly total: Res;
  /** `floor(total × watermark)`. */
  readonly watermark: Res;
  /** Node labels (for metric labels). */
  readonly labels: Readonly<Record<string, string>>;
}

/** Where a pod stands in a migration (reference §4.2). */
export type MigrationRole = "none" | "source" | "target";

/** What the scheduler knows of a VM runner pod beyond a plain pod. */
export interface VmPodFacts {
  /** Owning VirtualMachine name (same namespace). */
  readonly vmName: string;
  /** Migration role from owner references. */
  readonly role: MigrationRole;
  /** Labels allow the scheduler to migrate this VM. */
  readonly migrationAllowed: boolean;
  /** Actual size from the pod's `vm.neon.tech/resources` annotation, when present. */
  readonly actual: Res | undefined;
  /** Max size from the same annotation, when present. */
  readonly maxSize: Res | undefined;
  /** Overcommit factors in thousandths. */
  readonly overcommitMilli: Res;
  /** Approved annotation copied onto the pod, when present. */
  readonly podApproved: Res | undefined;
}

/** A pod as accounted. */
export interface PodInfo {
  /** Pod UID (map key). */
  readonly uid: string;
  /** Namespace. */
  readonly namespace: string;
  /** Name. */
  readonly name: string;
  /** `spec.nodeName`, when bound. */
  readonly nodeName: string | undefined;
  /** `spec.schedulerName`. */
  readonly schedulerName: string;
  /** Creation time, epoch ms (0 when unknown). */
  readonly createdAtMs: number;
  /** Succeeded or Failed: holds nothing. */
  readonly terminal: boolean;
  /** Σ containers' requests (non-VM pods are accounted by these). */
  readonly requests: Res;
  /** Present for VM runner pods. */
  readonly vm: VmPodFacts | undefined;
}

/** What the scheduler reads of a VirtualMachine (converted by io from the CRD object). */
export interface VmView {
  /** Namespace. */
  readonly namespace: string;
  /** Name. */
  readonly name: string;
  /** UID. */
  readonly uid: string;
  /** `metadata.annotations` present at all (decides the JSON-patch shape). */
  readonly hasAnnotations: boolean;
  /** Raw annotation strings of the three §1.2 keys (for `test` guards). */
  readonly rawApproved: string | undefined;
  /** Raw requested annotation. */
  readonly rawRequested: string | undefined;
  /** Raw scaling-unit annotation. */
  readonly rawScalingUnit: string | undefined;
  /** Decoded approved annotation (undefined when absent or unparsable). */
  readonly approved: Res | undefined;
  /** Size from `spec.guest` `use` values, when known. */
  readonly specUse: Res | undefined;
}

/** A plugin-created VirtualMachineMigration. */
export interface MigrationView {
  /** Namespace. */
  readonly namespace: string;
  /** Name. */
  readonly name: string;
  /** UID. */
  readonly uid: string;
  /** `spec.vmName`. */
  readonly vmName: string;
  /** `status.phase` or `""`. */
  readonly phase: string;
  /** Being deleted. */
  readonly deleting: boolean;
}

/** Parses a JSON Resources annotation value. */
export function parseResourcesAnnotation(
  raw: string,
  key: string,
): { ok: true; value: Res } | { ok: false; error: ParseError } {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (cause) {
    return { ok: false, error: new ParseError(`annotation ${key} is not JSON`, { cause }) };
  }
  const r = ResourcesSchema.safeParse(json);
  if (!r.success) {
    return {
      ok: false,
      error: new ParseError(`annotation ${key} is not a Resources object`, {
        paths: [key],
        cause: r.error,
      }),
    };
  }
  return { ok: true, value: { cpu: r.data.vCPUs, mem: r.data.mem } };
}

const QuantitySchema = z.union([z.string(), z.number()]);
const RangeSchema = z.looseObject({
  min: QuantitySchema.optional(),
  max: QuantitySchema.optional(),
  use: QuantitySchema.optional(),
});
const VmResourcesAnnotationSchema = z.looseObject({
  cpus: RangeSchema,
  memorySlots: RangeSchema,
  memorySlotSize: QuantitySchema,
});
const OvercommitAnnotationSchema = z.looseObject({
  cpu: QuantitySchema.optional(),
  memory: QuantitySchema.optional(),
});

function quantityOrFail(
  v: string | number | undefined,
  parse: (v: string | number) => number | undefined,
): number | undefined {
  return v === undefined ? undefined : parse(v);
}

/** Parses a Node into NodeInfo; watermark is a fraction in (0, 1]. */
export function nodeInfoFromObject(node: SchedNode, watermark: number): NodeInfo {
  const alloc = node.status?.allocatable ?? {};
  const cpu = alloc.cpu === undefined ? 0 : parseMilliCpu(alloc.cpu) ?? 0;
  const mem = alloc.memory === undefined ? 0 : parseBytes(alloc.memory) ?? 0;
  return {
    name: node.metadata.name,
    total: { cpu, mem },
    watermark: { cpu: Math.floor(cpu * watermark), mem: Math.floor(mem * watermark) },
    labels: node.metadata.labels ?? {},
  };
}

/** Parses a Pod into PodInfo; a VM pod with a malformed annotation is a ParseError. */
export function podInfoFromObject(
  pod: SchedPod,
): { ok: true; value: PodInfo } | { ok: false; error: ParseError } {
  const meta = pod.metadata;
  const ns = meta.namespace ?? "default";
  const what = `Pod "${ns}/${meta.name}"`;
  const ann = meta.annotations ?? {};
  const labels = meta.labels ?? {};
  const owners = meta.ownerReferences ?? [];
  let requests = { cpu: 0, mem: 0 };
  for (const c of pod.spec?.containers ?? []) {
    const req = c.resources?.requests ?? {};
    const cpu = req.cpu === undefined ? 0 : parseMilliCpu(req.cpu);
    const mem = req.memory === undefined ? 0 : parseBytes(req.memory);
    if (cpu === undefined || mem === undefined) {
      return {
        ok: false,
        error: new ParseError(`Cannot account ${what}: bad resource request`, {
          paths: ["spec.containers.resources.requests"],
        }),
      };
    }
    requests = { cpu: requests.cpu + cpu, mem: requests.mem + mem };
  }
  const vmOwner = owners.find((o) =>
    o.apiVersion === NEONVM_API_VERSION && o.kind === "VirtualMachine"
  );
  let vm: VmPodFacts | undefined;
  if (vmOwner !== undefined) {
    const migOwner = owners.find((o) =>
      o.apiVersion === NEONVM_API_VERSION && o.kind === "VirtualMachineMigration"
    );
    const role: MigrationRole = migOwner === undefined
      ? "none"
      : migOwner.controller === true
      ? "target"
      : "source";
    let actual: Res | undefined;
    let maxSize: Res | undefined;
    const rawRes = ann[ANN_VM_RESOURCES];
    if (rawRes !== undefined) {
      const parsed = parseVmResources(rawRes);
      if (!parsed.ok) return { ok: false, error: withWhat(parsed.error, what) };
      actual = parsed.actual;
      maxSize = parsed.max;
    }
    let overcommitMilli = NO_OVERCOMMIT;
    const rawOc = ann[ANN_OVERCOMMIT];
    if (rawOc !== undefined) {
      const oc = parseOvercommit(rawOc);
      if (!oc.ok) return { ok: false, error: withWhat(oc.error, what) };
      overcommitMilli = oc.value;
    }
    let podApproved: Res | undefined;
    const rawApproved = ann[ANN_APPROVED];
    if (rawApproved !== undefined) {
      const a = parseResourcesAnnotation(rawApproved, ANN_APPROVED);
      if (!a.ok) return { ok: false, error: withWhat(a.error, what) };
      podApproved = a.value;
    }
    vm = {
      vmName: vmOwner.name,
      role,
      migrationAllowed: labels[LABEL_AUTO_MIGRATION] === "true" ||
        labels[LABEL_ALWAYS_MIGRATE] === "true",
      actual,
      maxSize,
      overcommitMilli,
      podApproved,
    };
  }
  const created = meta.creationTimestamp ? Date.parse(meta.creationTimestamp) : NaN;
  const phase = pod.status?.phase ?? "";
  return {
    ok: true,
    value: {
      uid: meta.uid ?? `${ns}/${meta.name}`,
      namespace: ns,
      name: meta.name,
      nodeName: pod.spec?.nodeName || undefined,
      schedulerName: pod.spec?.schedulerName ?? "default-scheduler",
      createdAtMs: Number.isFinite(created) ? created : 0,
      terminal: phase === "Succeeded" || phase === "Failed",
      requests,
      vm,
    },
  };
}

function withWhat(err: ParseError, what: string): ParseError {
  return new ParseError(`Cannot account ${what}: ${err.message}`, { paths: err.paths, cause: err });
}

function parseVmResources(
  raw: string,
): { ok: true; actual: Res; max: Res | undefined } | { ok: false; error: ParseError } {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (cause) {
    return {
      ok: false,
      error: new ParseError(`annotation ${ANN_VM_RESOURCES} is not JSON`, { cause }),
    };
  }
  const r = VmResourcesAnnotationSchema.safeParse(json);
  if (!r.success) {
    return {
      ok: false,
      error: new ParseError(`annotation ${ANN_VM_RESOURCES} has the wrong shape`, {
        paths: [ANN_VM_RESOURCES],
        cause: r.error,
      }),
    };
  }
  const slot = parseBytes(r.data.memorySlotSize);
  const cpuUse = quantityOrFail(r.data.cpus.use ?? r.data.cpus.min, parseMilliCpu);
  const memUse = quantityOrFail(r.data.memorySlots.use ?? r.data.memorySlots.min, parseBytes);
  const cpuMax = quantityOrFail(r.data.cpus.max, parseMilliCpu);
  const memMax = quantityOrFail(r.data.memorySlots.max, parseBytes);
  if (slot === undefined || cpuUse === undefined || memUse === undefined) {
    return {
      ok: false,
      error: new ParseError(`annotation ${ANN_VM_RESOURCES} has a bad quantity`, {
        paths: [ANN_VM_RESOURCES],
      }),
    };
  }
  // memorySlots values are slot counts (plain integers), not bytes.
  const actual = { cpu: cpuUse, mem: memUse * slot };
  const maxSize = cpuMax !== undefined && memMax !== undefined
    ? { cpu: cpuMax, mem: memMax * slot }
    : undefined;
  return { ok: true, actual, max: maxSize };
}

function parseOvercommit(raw: string): { ok: true; value: Res } | { ok: false; error: ParseError } {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (cause) {
    return {
      ok: false,
      error: new ParseError(`annotation ${ANN_OVERCOMMIT} is not JSON`, { cause }),
    };
  }
  const r = OvercommitAnnotationSchema.safeParse(json);
  const cpu = r.success && r.data.cpu !== undefined ? parseMilliCpu(r.data.cpu) : 1000;
  const mem = r.success && r.data.memory !== undefined ? parseMilliCpu(r.data.memory) : 1000;
  if (!r.success || cpu === undefined || mem === undefined || cpu < 1000 || mem < 1000) {
    // Factors below 1 would make a VM reserve more than it uses; the reference treats them as
    // invalid too (overcommit ≥ 1).
    return {
      ok: false,
      error: new ParseError(`annotation ${ANN_OVERCOMMIT} must hold factors ≥ 1`, {
        paths: [ANN_OVERCOMMIT],
      }),
    };
  }
  return { ok: true, value: { cpu, mem } };
}
