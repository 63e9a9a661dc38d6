/**
 * The `VirtualMachineMigration` custom resource (`vm.neon.tech/v1`, reference §2.3): zod schemas
 * with the CRD defaults, inferred types and the exact wire encoder. Unknown fields are kept on the
 * parsed value for the same reason as in `virtualmachine.ts`.
 * Pure: no I/O.
 * @module
 */
import { z } from "zod";
import { formatBinarySi } from "./quantity.ts";
import {
  bytesField,
  conditionsField,
  int32,
  int64,
  type Json,
  looseObject,
  NEONVM_API_VERSION,
  ObjectMetaSchema,
  sortKeysDeep,
} from "./virtualmachine.ts";
import { crd } from "./virtualmachine_crd_meta.ts";

/** Port QEMU listens on for incoming migrations. */
export const MIGRATION_PORT = 20187;

/** Migration phases. */
export const VmmPhaseSchema = z.enum(["Pending", "Running", "Succeeded", "Failed"]);
/** A migration phase. */
export type VmmPhase = z.infer<typeof VmmPhaseSchema>;

/** `spec` of a migration, with the CRD defaults applied. Immutable after creation. */
export const VirtualMachineMigrationSpecSchema = crd(
  looseObject({
    vmName: z.string().min(1),
    nodeSelector: z.record(z.string(), z.string()).optional(),
    // Declared by the reference but not implemented; kept free-form (corev1.NodeAffinity).
    nodeAffinity: crd(looseObject({}), { preserveUnknownFields: true }).optional(),
    preventMigrationToSameHost: z.boolean().default(true),
    completionTimeout: int32().default(3600),
    incremental: z.boolean().default(true),
    allowPostCopy: z.boolean().default(false),
    autoConverge: z.boolean().default(true),
    /** Bytes per second. */
    maxBandwidth: bytesField().prefault("1Gi"),
  }),
  {
    validations: [{
      rule: "self == oldSelf",
      message: "updating migration spec is not allowed",
    }],
  },
);
/** Migration spec (defaults applied). */
export type VirtualMachineMigrationSpec = z.infer<typeof VirtualMachineMigrationSpecSchema>;

/** `status.info`: QEMU's migration statistics. */
export const MigrationInfoSchema = looseObject({
  status: z.string().optional(),
  totalTimeMs: int64().optional(),
  setupTimeMs: int64().optional(),
  downtimeMs: int64().optional(),
  ram: looseObject({
    transferred: int64().optional(),
    remaining: int64().optional(),
    total: int64().optional(),
  }).optional(),
  compression: looseObject({
    compressedSize: int64().optional(),
    compressionRate: int64().optional(),
  }).optional(),
});
/** Migration statistics. */
export type MigrationInfo = z.infer<typeof MigrationInfoSchema>;

/** `status` of a migration. */
export const VirtualMachineMigrationStatusSchema = looseObject({
  phase: VmmPhaseSchema.optional(),
  conditions: conditionsField().optional(),
  sourcePodName: z.string().optional(),
  targetPodName: z.string().optional(),
  sourcePodIP: z.string().optional(),
  targetPodIP: z.string().optional(),
  sourceNode: z.string().optional(),
  targetNode: z.string().optional(),
  info: MigrationInfoSchema.optional(),
});
/** Migration status. */
export type VirtualMachineMigrationStatus = z.infer<typeof VirtualMachineMigrationStatusSchema>;

/** A whole VirtualMachineMigration object. */
export const VirtualMachineMigrationSchema = looseObject({
  apiVersion: z.literal(NEONVM_API_VERSION),
  kind: z.literal("VirtualMachineMigration"),
  metadata: ObjectMetaSchema,
  spec: VirtualMachineMigrationSpecSchema,
  status: VirtualMachineMigrationStatusSchema.optional(),
});
/** A parsed migration (`maxBandwidth` in bytes per second). */
export type VirtualMachineMigration = z.infer<typeof VirtualMachineMigrationSchema>;
/** A migration as written on the wire. */
export type VirtualMachineMigrationWire = z.input<typeof VirtualMachineMigrationSchema>;

/** Wire JSON of a migration spec, keys sorted like the apiserver's. */
export function encodeVirtualMachineMigrationSpec(spec: VirtualMachineMigrationSpec): Json {
  return sortKeysDeep({ ...spec, maxBandwidth: formatBinarySi(spec.maxBandwidth) });
}

/** Wire JSON of a migration status, keys sorted like the apiserver's. */
export function encodeVirtualMachineMigrationStatus(status: VirtualMachineMigrationStatus): Json {
  return sortKeysDeep(status);
}

/** Wire JSON of a whole migration; `encode(parse(x))` equals `x` for canonical objects. */
export function encodeVirtualMachineMigration(m: VirtualMachineMigration): Json {
  return sortKeysDeep({ ...m, spec: encodeVirtualMachineMigrationSpec(m.spec) });
}
