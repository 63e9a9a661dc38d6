/**
 * Converts API objects into the core's views: the minimal VirtualMachine and
 * VirtualMachineMigration shapes the scheduler reads. The VM schema here is deliberately looser
 * than `src/api/virtualmachine.ts`: a VM the full schema rejects must still be counted, or its
 * reservation would silently vanish from the accounting. Does no I/O.
 * @module
 */
import { z } from "zod";
import { parseBytes, parseMilliCpu } from "../../api/quantity.ts";
import type { MigrationView, VmView } from "../core/objects.ts";
import {
  ANN_APPROVED,
  ANN_REQUESTED,
  ANN_SCALING_UNIT,
  parseResourcesAnnotation,
} from "../core/objects.ts";

const Quantity = z.union([z.string(), z.number()]);

/** The part of a VirtualMachine the scheduler reads. */
export const SchedVmSchema = z.looseObject({
  metadata: z.looseObject({
    name: z.string(),
    namespace: z.string().optional(),
    uid: z.string().optional(),
    resourceVersion: z.string().optional(),
    annotations: z.record(z.string(), z.string()).nullable().optional(),
  }),
  spec: z.looseObject({
    guest: z.looseObject({
      cpus: z.looseObject({ use: Quantity.optional(), min: Quantity.optional() }).optional(),
      memorySlots: z.looseObject({ use: z.number().optional(), min: z.number().optional() })
        .optional(),
      memorySlotSize: Quantity.optional(),
    }).optional(),
  }).optional(),
});
/** A VirtualMachine as the scheduler reads it. */
export type SchedVm = z.infer<typeof SchedVmSchema>;

/** The part of a VirtualMachineMigration the scheduler reads. */
export const SchedMigrationSchema = z.looseObject({
  metadata: z.looseObject({
    name: z.string(),
    namespace: z.string().optional(),
    uid: z.string().optional(),
    resourceVersion: z.string().optional(),
    deletionTimestamp: z.string().nullable().optional(),
    labels: z.record(z.string(), z.string()).nullable().optional(),
  }),
  spec: z.looseObject({ vmName: z.string() }),
  status: z.looseObject({ phase: z.string().optional() }).nullable().optional(),
});
/** A migration as the scheduler reads it. */
export type SchedMigration = z.infer<typeof SchedMigrationSchema>;

/** Converts a VM object; an unparsable approved annotation counts as absent (use still counts). */
export function vmViewFromObject(vm: SchedVm): VmView {
  const ann = vm.metadata.annotations ?? undefined;
  const rawApproved = ann?.[ANN_APPROVED];
  let approved = undefined;
  if (rawApproved !== undefined) {
    const r = parseResourcesAnnotation(rawApproved, ANN_APPROVED);
    if (r.ok) approved = r.value;
  }
  const g = vm.spec?.guest;
  let specUse = undefined;
  const cpuQ = g?.cpus?.use ?? g?.cpus?.min;
  const slots = g?.memorySlots?.use ?? g?.memorySlots?.min;
  const slotSize = g?.memorySlotSize === undefined
    ? 1024 * 1024 * 1024
    : parseBytes(g.memorySlotSize);
  if (cpuQ !== undefined && slots !== undefined && slotSize !== undefined) {
    const cpu = parseMilliCpu(cpuQ);
    if (cpu !== undefined) specUse = { cpu, mem: slots * slotSize };
  }
  return {
    namespace: vm.metadata.namespace ?? "default",
    name: vm.metadata.name,
    uid: vm.metadata.uid ?? "",
    hasAnnotations: ann !== undefined,
    rawApproved,
    rawRequested: ann?.[ANN_REQUESTED],
    rawScalingUnit: ann?.[ANN_SCALING_UNIT],
    approved,
    specUse,
  };
}

/** Converts a migration object. */
export function migrationViewFromObject(m: SchedMigration): MigrationView {
  return {
    namespace: m.metadata.namespace ?? "default",
    name: m.metadata.name,
    uid: m.metadata.uid ?? "",
    vmName: m.spec.vmName,
    phase: m.status?.phase ?? "",
    deleting: m.metadata.deletionTimestamp !== undefined && m.metadata.deletionTimestamp !== null,
  };
}

/** Numeric resourceVersion for ordering (etcd revisions), NaN when not numeric. */
export function resourceVersionNumber(rv: string | undefined): number {
  return rv === undefined || !/^\d+$/.test(rv) ? NaN : Number(rv);
}
