/**
 * The `IPPool` custom resource (`vm.neon.tech/v1`, reference §2.5): whereabouts-compatible
 * allocations of the extra-network range. No status subresource.
 * Pure: no I/O.
 * @module
 */
import { z } from "zod";
import {
  type Json,
  looseObject,
  NEONVM_API_VERSION,
  ObjectMetaSchema,
  sortKeysDeep,
} from "./virtualmachine.ts";

/** One allocation, keyed by the offset (decimal string) inside the range. */
export const IpAllocationSchema = looseObject({
  id: z.string(),
  podref: z.string().optional(),
});
/** One IP allocation. */
export type IpAllocation = z.infer<typeof IpAllocationSchema>;

/** `spec` of an IPPool. */
export const IpPoolSpecSchema = looseObject({
  /** CIDR, e.g. `10.100.0.0/16`. */
  range: z.string(),
  allocations: z.record(z.string(), IpAllocationSchema),
});
/** IPPool spec. */
export type IpPoolSpec = z.infer<typeof IpPoolSpecSchema>;

/** A whole IPPool object. */
export const IpPoolSchema = looseObject({
  apiVersion: z.literal(NEONVM_API_VERSION),
  kind: z.literal("IPPool"),
  metadata: ObjectMetaSchema,
  spec: IpPoolSpecSchema,
});
/** A parsed IPPool. */
export type IpPool = z.infer<typeof IpPoolSchema>;

/** Object name of the pool for `range` (`/` → `-`), prefixed with `<networkName>-` if given. */
export function ipPoolName(range: string, networkName?: string): string {
  const base = range.replaceAll("/", "-");
  return networkName ? `${networkName}-${base}` : base;
}

/** Wire JSON of an IPPool, keys sorted like the apiserver's. */
export function encodeIpPool(p: IpPool): Json {
  return sortKeysDeep(p);
}
