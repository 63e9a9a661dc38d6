/**
 * CRD annotations for zod schemas: a zod registry recording what the CRD generator
 * (`scripts/gen_crds.ts`) must add to a schema node that zod cannot say itself — int-or-string
 * quantities with their pattern, free-form (preserve-unknown-fields) subtrees, CEL validation rules,
 * integer formats. Shared by every `vm.neon.tech` schema (VirtualMachine, migration, IPPool).
 * Pure: no I/O. Registering a schema here changes nothing about how it parses.
 * @module
 */
import { z } from "zod";

/** One `x-kubernetes-validations` entry. `message` must name the field it is about. */
export interface CelRule {
  /** The CEL expression; `self` is the node, `oldSelf` the previous value (update only). */
  readonly rule: string;
  /** Error text returned to the client; names the offending field. */
  readonly message: string;
  /** Path of the field to blame, relative to the node (e.g. `.cpus.use`). */
  readonly fieldPath?: string;
}

/** What the CRD generator adds to a node. */
export interface CrdMeta {
  /** Emit `x-kubernetes-int-or-string: true` with this `pattern` (quantities). */
  readonly intOrString?: { readonly pattern: string };
  /** Emit `x-kubernetes-preserve-unknown-fields: true` (free-form embedded Kubernetes types). */
  readonly preserveUnknownFields?: boolean;
  /** Emit these `x-kubernetes-validations`. */
  readonly validations?: readonly CelRule[];
  /** Integer format (`int32`, `int64`); bounds implied by the format are then not emitted. */
  readonly format?: "int32" | "int64";
  /** Emit `x-kubernetes-list-type: map` keyed by these fields (arrays of objects only). */
  readonly listMapKeys?: readonly string[];
  /** `description` for the node. */
  readonly description?: string;
}

/** The registry the CRD generator reads. */
export const crdMeta: z.core.$ZodRegistry<CrdMeta> = z.registry<CrdMeta>();

/** Registers `meta` for `schema` and returns `schema` (for inline use in a shape). */
export function crd<T extends z.ZodType>(schema: T, meta: CrdMeta): T {
  crdMeta.add(schema, meta);
  return schema;
}

/**
 * Kubernetes' own quantity pattern (what `resource.Quantity` fields get in a generated CRD).
 * Anchored at both ends.
 */
export const K8S_QUANTITY_PATTERN =
  "^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$";

/**
 * The reference's MilliCPU pattern: digits, then an optional decimal part or an `m` suffix.
 * Why it differs: the reference leaves it unanchored at the end (so `"1mfoo"` passed the schema and
 * failed later); we anchor it on purpose.
 */
export const MILLICPU_PATTERN = "^[0-9]+((\\.[0-9]*)?|m)$";

/** CEL text converting an int-or-string quantity field to a CEL `Quantity`. */
export function celQuantity(expr: string): string {
  return `quantity(string(${expr}))`;
}
