/**
 * The few API calls the scheduler makes, as a small interface so handlers can be tested with
 * in-memory fakes; `kubeFromClient` implements it over `src/lib/k8s`. Errors are `RemoteError`s
 * carrying the HTTP status (422 for a failed JSON-patch `test`, 404, 409). No caching, no retries.
 * @module
 */
import type { ExtenderBindingArgs } from "../../api/extender.ts";
import { buildBinding } from "../../api/extender.ts";
import type { JsonPatchOp, KubeClient } from "../../lib/k8s/client.ts";
import { PODS, VIRTUAL_MACHINE_MIGRATIONS, VIRTUAL_MACHINES } from "../../lib/k8s/meta.ts";
import { z } from "zod";

/** A JSON-patch operation. */
export type PatchOp = JsonPatchOp;

/** API calls of the scheduler. */
export interface SchedulerKube {
  /** JSON-patches a VirtualMachine; returns the patched object (raw JSON). */
  patchVm(
    namespace: string,
    name: string,
    ops: readonly PatchOp[],
    signal?: AbortSignal,
  ): Promise<unknown>;
  /** Reads a VirtualMachine (raw JSON). */
  getVm(namespace: string, name: string, signal?: AbortSignal): Promise<unknown>;
  /** Reads a Pod (raw JSON). */
  getPod(namespace: string, name: string, signal?: AbortSignal): Promise<unknown>;
  /** POSTs `pods/<name>/binding`. */
  bindPod(args: ExtenderBindingArgs, signal?: AbortSignal): Promise<void>;
  /** Creates a VirtualMachineMigration (raw JSON body). */
  createMigration(namespace: string, body: unknown, signal?: AbortSignal): Promise<void>;
  /** Deletes a VirtualMachineMigration if it still has this UID. */
  deleteMigration(
    namespace: string,
    name: string,
    uid: string,
    signal?: AbortSignal,
  ): Promise<void>;
}

const Raw = z.looseObject({ metadata: z.looseObject({ name: z.string().optional() }).optional() });

/** Implements {@linkcode SchedulerKube} over a `KubeClient`. */
export function kubeFromClient(client: KubeClient, timeoutMs: number): SchedulerKube {
  const vms = client.resource(VIRTUAL_MACHINES, Raw);
  const pods = client.resource(PODS, Raw);
  const migs = client.resource(VIRTUAL_MACHINE_MIGRATIONS, Raw);
  const sig = (signal?: AbortSignal): AbortSignal => {
    const t = AbortSignal.timeout(timeoutMs);
    return signal === undefined ? t : AbortSignal.any([signal, t]);
  };
  return {
    patchVm: (namespace, name, ops, signal) =>
      vms.patch(name, { type: "json", ops }, { namespace, signal: sig(signal) }),
    getVm: (namespace, name, signal) => vms.get(name, { namespace, signal: sig(signal) }),
    getPod: (namespace, name, signal) => pods.get(name, { namespace, signal: sig(signal) }),
    bindPod: async (args, signal) => {
      await pods.createSubresource(args.PodName, "binding", buildBinding(args), {
        namespace: args.PodNamespace,
        signal: sig(signal),
      });
    },
    createMigration: async (namespace, body, signal) => {
      await migs.create(body as z.input<typeof Raw>, { namespace, signal: sig(signal) });
    },
    deleteMigration: (namespace, name, uid, signal) =>
      migs.delete(name, { namespace, preconditions: { uid }, signal: sig(signal) }),
  };
}
