/**
 * The kube-scheduler HTTP extender protocol (k8s.io/kube-scheduler/extender/v1): ExtenderArgs,
 * ExtenderFilterResult, HostPriorityList, ExtenderBindingArgs / ExtenderBindingResult, with the
 * PascalCase keys Go's encoding/json uses for these untagged types. Also the minimal Pod and Node
 * shapes the autoscale-scheduler reads from the API (loose: unknown fields are kept, not checked).
 * Contracts only: no I/O.
 * @module
 */
import { z } from "zod";

/** The part of metav1.ObjectMeta the scheduler reads. */
export const SchedObjectMetaSchema = z.looseObject({
  name: z.string(),
  namespace: z.string().optional(),
  uid: z.string().optional(),
  resourceVersion: z.string().optional(),
  creationTimestamp: z.string().nullable().optional(),
  deletionTimestamp: z.string().nullable().optional(),
  labels: z.record(z.string(), z.string()).nullable().optional(),
  annotations: z.record(z.string(), z.string()).nullable().optional(),
  ownerReferences: z.array(z.looseObject({
    apiVersion: z.string(),
    kind: z.string(),
    name: z.string(),
    uid: z.string().optional(),
    controller: z.boolean().nullable().optional(),
  })).nullable().optional(),
});

const ResourceListSchema = z.record(z.string(), z.union([z.string(), z.number()]));

/** A container's resource requests and limits, as quantities. */
export const ContainerResourcesSchema = z.looseObject({
  requests: ResourceListSchema.nullable().optional(),
  limits: ResourceListSchema.nullable().optional(),
});

/** The part of a core/v1 Pod the scheduler reads. */
export const SchedPodSchema = z.looseObject({
  apiVersion: z.string().optional(),
  kind: z.string().optional(),
  metadata: SchedObjectMetaSchema,
  spec: z.looseObject({
    nodeName: z.string().nullable().optional(),
    schedulerName: z.string().nullable().optional(),
    containers: z.array(z.looseObject({
      name: z.string().optional(),
      resources: ContainerResourcesSchema.nullable().optional(),
    })).nullable().optional(),
  }).optional(),
  status: z.looseObject({
    phase: z.string().nullable().optional(),
  }).nullable().optional(),
});
/** A pod as the scheduler sees it. */
export type SchedPod = z.infer<typeof SchedPodSchema>;

/** The part of a core/v1 Node the scheduler reads. */
export const SchedNodeSchema = z.looseObject({
  apiVersion: z.string().optional(),
  kind: z.string().optional(),
  metadata: SchedObjectMetaSchema,
  spec: z.looseObject({
    unschedulable: z.boolean().nullable().optional(),
  }).nullable().optional(),
  status: z.looseObject({
    allocatable: ResourceListSchema.nullable().optional(),
  }).nullable().optional(),
});
/** A node as the scheduler sees it. */
export type SchedNode = z.infer<typeof SchedNodeSchema>;

/** A core/v1 NodeList (sent only when nodeCacheCapable is false). */
export const NodeListSchema = z.looseObject({
  items: z.array(SchedNodeSchema).nullable().optional(),
});

/** Body of the filter and prioritize calls. */
export const ExtenderArgsSchema = z.object({
  Pod: SchedPodSchema,
  Nodes: NodeListSchema.nullable().optional(),
  NodeNames: z.array(z.string()).nullable().optional(),
});
/** Decoded ExtenderArgs. */
export type ExtenderArgs = z.infer<typeof ExtenderArgsSchema>;

/** Answer to the filter call (nodeCacheCapable: `NodeNames`, else `Nodes`). */
export interface ExtenderFilterResult {
  /** Nodes that pass, when nodeCacheCapable is false. */
  Nodes: { items: unknown[] } | null;
  /** Names of nodes that pass, when nodeCacheCapable is true; a subset of the input. */
  NodeNames: string[] | null;
  /** Node → reason; preemption might help. */
  FailedNodes: Record<string, string>;
  /** Node → reason; preemption will not help. */
  FailedAndUnresolvableNodes: Record<string, string>;
  /** Non-empty fails the whole scheduling attempt. */
  Error: string;
}

/** Schema of ExtenderFilterResult, for clients and round-trip tests. */
export const ExtenderFilterResultSchema = z.object({
  Nodes: z.object({ items: z.array(z.unknown()) }).nullable().optional(),
  NodeNames: z.array(z.string()).nullable().optional(),
  FailedNodes: z.record(z.string(), z.string()).nullable().optional(),
  FailedAndUnresolvableNodes: z.record(z.string(), z.string()).nullable().optional(),
  Error: z.string().optional(),
});

/** One node's score; 0..MAX_EXTENDER_PRIORITY. */
export const HostPrioritySchema = z.object({
  Host: z.string(),
  Score: z.number().int(),
});
/** One node's score. */
export type HostPriority = z.infer<typeof HostPrioritySchema>;

/** Answer to the prioritize call. */
export const HostPriorityListSchema = z.array(HostPrioritySchema);
/** Answer to the prioritize call. */
export type HostPriorityList = HostPriority[];

/** Highest score an extender may give (`MaxExtenderPriority`). */
export const MAX_EXTENDER_PRIORITY = 10;

/** Body of the bind call. */
export const ExtenderBindingArgsSchema = z.object({
  PodName: z.string(),
  PodNamespace: z.string(),
  PodUID: z.string(),
  Node: z.string(),
});
/** Decoded ExtenderBindingArgs. */
export type ExtenderBindingArgs = z.infer<typeof ExtenderBindingArgsSchema>;

/** Answer to the bind call; empty `Error` means bound. */
export const ExtenderBindingResultSchema = z.object({
  Error: z.string().optional(),
});
/** Answer to the bind call. */
export interface ExtenderBindingResult {
  /** Empty on success. */
  Error: string;
}

/** Builds the core/v1 Binding the binder POSTs to `pods/<name>/binding`. */
export function buildBinding(
  args: ExtenderBindingArgs,
): Record<string, unknown> {
  return {
    apiVersion: "v1",
    kind: "Binding",
    metadata: { name: args.PodName, namespace: args.PodNamespace, uid: args.PodUID },
    target: { apiVersion: "v1", kind: "Node", name: args.Node },
  };
}
