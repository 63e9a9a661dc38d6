/**
 * The NeonVM patch (§3.5): a JSON Patch replacing `spec.guest.cpus.use`,
 * `spec.guest.memorySlots.use` and `spec.targetRevision` on the VirtualMachine. Builds the
 * operations (pure) and hands them to an injected patch function; decides nothing.
 * @module
 */
import { encodeMilliCpu, type Resources } from "../../api/quantity.ts";
import { encodeRevisionWithTime, type Revision, revisionWithTime } from "../../api/revision.ts";
import { InvariantError } from "../../lib/errors.ts";

/** One JSON Patch operation. */
export interface PatchOp {
  /** `replace` for the use values; `add` (which also replaces) for the optional revision. */
  readonly op: "replace" | "add";
  /** JSON pointer. */
  readonly path: string;
  /** New value. */
  readonly value: unknown;
}

/** The operations that set the VM's usage and target revision. */
export function neonvmPatchOps(
  target: Resources,
  slotSizeBytes: number,
  revision: Revision,
  nowMs: number,
): PatchOp[] {
  if (target.mem % slotSizeBytes !== 0) {
    throw new InvariantError(
      `memory ${target.mem} is not a whole number of ${slotSizeBytes}-byte slots`,
    );
  }
  return [
    { op: "replace", path: "/spec/guest/cpus/use", value: encodeMilliCpu(target.vCPUs) },
    { op: "replace", path: "/spec/guest/memorySlots/use", value: target.mem / slotSizeBytes },
    {
      op: "add",
      path: "/spec/targetRevision",
      value: encodeRevisionWithTime(revisionWithTime(revision, nowMs)),
    },
  ];
}

/** Applies a JSON Patch to a VirtualMachine (`namespace`, `name`). */
export type PatchVmFn = (
  namespace: string,
  name: string,
  ops: PatchOp[],
  signal: AbortSignal,
) => Promise<void>;
