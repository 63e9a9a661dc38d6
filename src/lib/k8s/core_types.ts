/**
 * Loose zod schemas for the built-in objects the project reads: Pod, Node, Lease, Event. Only the
 * fields someone reads are checked; unknown fields are kept so objects round-trip. Pure: no I/O.
 * @module
 */
import { z } from "zod";
import { ObjectMetaSchema } from "./meta.ts";

const QuantityMap = z.record(z.string(), z.union([z.string(), z.number()]));

/** core/v1 ResourceRequirements (quantities kept as wire strings). */
export const ResourceRequirementsSchema = z.looseObject({
  requests: QuantityMap.optional(),
  limits: QuantityMap.optional(),
});

/** core/v1 Container (the fields read). */
export const ContainerSchema = z.looseObject({
  name: z.string(),
  image: z.string().optional(),
  resources: ResourceRequirementsSchema.optional(),
});

/** core/v1 ContainerStatus (the fields read). */
export const ContainerStatusSchema = z.looseObject({
  name: z.string(),
  ready: z.boolean().optional(),
  restartCount: z.number().int().optional(),
  state: z.looseObject({
    running: z.looseObject({ startedAt: z.string().optional() }).optional(),
    waiting: z.looseObject({ reason: z.string().optional() }).optional(),
    terminated: z.looseObject({
      exitCode: z.number().int().optional(),
      reason: z.string().optional(),
    }).optional(),
  }).optional(),
  resources: ResourceRequirementsSchema.optional(),
  allocatedResources: QuantityMap.optional(),
});

/** A pod or node condition. */
export const ConditionSchema = z.looseObject({
  type: z.string(),
  status: z.string(),
  reason: z.string().optional(),
  message: z.string().optional(),
  lastTransitionTime: z.string().optional(),
});

/** core/v1 Pod (the fields read; everything else kept). */
export const PodSchema = z.looseObject({
  metadata: ObjectMetaSchema,
  spec: z.looseObject({
    nodeName: z.string().optional(),
    schedulerName: z.string().optional(),
    containers: z.array(ContainerSchema),
    initContainers: z.array(ContainerSchema).optional(),
  }),
  status: z.looseObject({
    phase: z.string().optional(),
    podIP: z.string().optional(),
    hostIP: z.string().optional(),
    startTime: z.string().optional(),
    conditions: z.array(ConditionSchema).optional(),
    containerStatuses: z.array(ContainerStatusSchema).optional(),
    resize: z.string().optional(),
  }).optional(),
});
/** core/v1 Pod. */
export type Pod = z.infer<typeof PodSchema>;

/** core/v1 Node (the fields read). */
export const NodeSchema = z.looseObject({
  metadata: ObjectMetaSchema,
  spec: z.looseObject({
    unschedulable: z.boolean().optional(),
    taints: z.array(z.looseObject({ key: z.string(), effect: z.string() })).optional(),
  }).optional(),
  status: z.looseObject({
    capacity: QuantityMap.optional(),
    allocatable: QuantityMap.optional(),
    conditions: z.array(ConditionSchema).optional(),
    addresses: z.array(z.looseObject({ type: z.string(), address: z.string() })).optional(),
  }).optional(),
});
/** core/v1 Node. */
export type Node = z.infer<typeof NodeSchema>;

/** coordination.k8s.io/v1 Lease. */
export const LeaseSchema = z.looseObject({
  metadata: ObjectMetaSchema,
  spec: z.looseObject({
    holderIdentity: z.string().nullish(),
    leaseDurationSeconds: z.number().int().nullish(),
    acquireTime: z.string().nullish(),
    renewTime: z.string().nullish(),
    leaseTransitions: z.number().int().nullish(),
  }).optional(),
});
/** coordination.k8s.io/v1 Lease. */
export type Lease = z.infer<typeof LeaseSchema>;

/** core/v1 ObjectReference, the subject of an Event. */
export const ObjectReferenceSchema = z.looseObject({
  apiVersion: z.string().optional(),
  kind: z.string().optional(),
  name: z.string().optional(),
  namespace: z.string().optional(),
  uid: z.string().optional(),
  resourceVersion: z.string().optional(),
});
/** core/v1 ObjectReference. */
export type ObjectReference = z.infer<typeof ObjectReferenceSchema>;

/** core/v1 Event. */
export const EventSchema = z.looseObject({
  metadata: ObjectMetaSchema,
  involvedObject: ObjectReferenceSchema,
  reason: z.string().optional(),
  message: z.string().optional(),
  type: z.string().optional(),
  count: z.number().int().optional(),
  firstTimestamp: z.string().nullish(),
  lastTimestamp: z.string().nullish(),
  source: z.looseObject({ component: z.string().optional(), host: z.string().optional() })
    .optional(),
});
/** core/v1 Event. */
export type Event = z.infer<typeof EventSchema>;
