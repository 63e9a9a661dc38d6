/**
 * Minimal Kubernetes object metadata and Status schemas shared by the client layer, plus the
 * resource descriptors (group, version, plural) of every resource the project talks to.
 * Pure: no I/O.
 * @module
 */
import { z } from "zod";

/** A metav1.OwnerReference. */
export const OwnerReferenceSchema = z.looseObject({
  apiVersion: z.string(),
  kind: z.string(),
  name: z.string(),
  uid: z.string(),
  controller: z.boolean().optional(),
  blockOwnerDeletion: z.boolean().optional(),
});
/** A metav1.OwnerReference. */
export type OwnerReference = z.infer<typeof OwnerReferenceSchema>;

/** metav1.ObjectMeta as returned by the API server (name always set). */
export const ObjectMetaSchema = z.looseObject({
  name: z.string(),
  namespace: z.string().optional(),
  uid: z.string().optional(),
  resourceVersion: z.string().optional(),
  generation: z.number().int().optional(),
  creationTimestamp: z.string().optional(),
  deletionTimestamp: z.string().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  finalizers: z.array(z.string()).optional(),
  ownerReferences: z.array(OwnerReferenceSchema).optional(),
});
/** metav1.ObjectMeta. */
export type ObjectMeta = z.infer<typeof ObjectMetaSchema>;

/** The smallest shape the client needs to address an object. */
export interface ObjectLike {
  /** Object metadata. */
  readonly metadata?: {
    readonly name?: string | undefined;
    readonly namespace?: string | undefined;
    readonly resourceVersion?: string | undefined;
    readonly uid?: string | undefined;
  } | undefined;
}

/** Any object with standard metadata, nothing else checked. */
export const AnyObjectSchema = z.looseObject({ metadata: ObjectMetaSchema });
/** Any object with standard metadata. */
export type AnyObject = z.infer<typeof AnyObjectSchema>;

/** metav1.Status, the body of every API error. */
export const StatusSchema = z.looseObject({
  kind: z.literal("Status").optional(),
  status: z.string().optional(),
  message: z.string().optional(),
  reason: z.string().optional(),
  code: z.number().int().optional(),
  details: z.unknown().optional(),
});
/** metav1.Status. */
export type Status = z.infer<typeof StatusSchema>;

/** Where a resource lives in the API. */
export interface ResourceDescriptor {
  /** API group; `""` for the core group. */
  readonly group: string;
  /** API version, e.g. `v1`. */
  readonly version: string;
  /** Plural resource name in URLs. */
  readonly plural: string;
  /** Kind, for error messages and created objects. */
  readonly kind: string;
  /** Whether objects live in a namespace. */
  readonly namespaced: boolean;
}

/** The `apiVersion` string of a descriptor (`v1`, `vm.neon.tech/v1`). */
export function apiVersionOf(d: ResourceDescriptor): string {
  return d.group === "" ? d.version : `${d.group}/${d.version}`;
}

/** core/v1 Pods. */
export const PODS: ResourceDescriptor = {
  group: "",
  version: "v1",
  plural: "pods",
  kind: "Pod",
  namespaced: true,
};
/** core/v1 Nodes. */
export const NODES: ResourceDescriptor = {
  group: "",
  version: "v1",
  plural: "nodes",
  kind: "Node",
  namespaced: false,
};
/** core/v1 Events. */
export const EVENTS: ResourceDescriptor = {
  group: "",
  version: "v1",
  plural: "events",
  kind: "Event",
  namespaced: true,
};
/** coordination.k8s.io/v1 Leases. */
export const LEASES: ResourceDescriptor = {
  group: "coordination.k8s.io",
  version: "v1",
  plural: "leases",
  kind: "Lease",
  namespaced: true,
};
/** vm.neon.tech/v1 VirtualMachines. */
export const VIRTUAL_MACHINES: ResourceDescriptor = {
  group: "vm.neon.tech",
  version: "v1",
  plural: "virtualmachines",
  kind: "VirtualMachine",
  namespaced: true,
};
/** vm.neon.tech/v1 VirtualMachineMigrations. */
export const VIRTUAL_MACHINE_MIGRATIONS: ResourceDescriptor = {
  group: "vm.neon.tech",
  version: "v1",
  plural: "virtualmachinemigrations",
  kind: "VirtualMachineMigration",
  namespaced: true,
};
