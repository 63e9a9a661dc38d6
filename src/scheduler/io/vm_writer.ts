/**
 * Records permit decisions on VirtualMachine objects (the §1.2 annotations: scaling-unit,
 * resources-requested, resources-approved) with a JSON-patch `test` guard on the approved value
 * last seen, one write at a time per VM, always writing the VM's latest decision. `persist` is
 * awaited by the permit path before an increase is returned; `writeBehind` is used for no-change
 * and decreases and retries on its own. Writes in flight are registered in the core state so the
 * permit decision knows what could still land. At most `maxConcurrentCalls` VM API calls are in
 * flight at once (the config's `reconcileWorkers`, which in the reference sizes the worker pool
 * that makes these patches); an increase waiting for its patch goes before write-behinds.
 * Does not decide anything.
 * @module
 */
import { encodeResources } from "../../api/quantity.ts";
import type { Clock } from "../../lib/clock.ts";
import { RemoteError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { ANN_APPROVED, ANN_REQUESTED, ANN_SCALING_UNIT, type VmView } from "../core/objects.ts";
import type { Res } from "../core/resources.ts";
import { beginWrite, type ClusterState, type Decision, endWrite } from "../core/state.ts";
import type { PatchOp, SchedulerKube } from "./kube.ts";

/** Exact annotation text of a Resources value (`{"vCPUs":1,"mem":"4Gi"}`). */
export function resourcesAnnotation(r: Res): string {
  return JSON.stringify(encodeResources({ vCPUs: r.cpu, mem: r.mem }));
}

function escape(key: string): string {
  return key.replaceAll("~", "~0").replaceAll("/", "~1");
}

/** Builds the guarded JSON patch that records `d` on a VM last seen as `view`. */
export function buildApprovalPatch(view: VmView, d: Decision): PatchOp[] {
  const values: Record<string, string> = {
    [ANN_SCALING_UNIT]: resourcesAnnotation(d.scalingUnit),
    [ANN_REQUESTED]: resourcesAnnotation(d.requested),
    [ANN_APPROVED]: resourcesAnnotation(d.approved),
  };
  if (!view.hasAnnotations) {
    // No annotations map yet: the `test` for null passes only while it is still absent.
    return [
      { op: "test", path: "/metadata/annotations", value: null },
      { op: "add", path: "/metadata/annotations", value: values },
    ];
  }
  const ops: PatchOp[] = [{
    op: "test",
    path: `/metadata/annotations/${escape(ANN_APPROVED)}`,
    value: view.rawApproved ?? null,
  }];
  for (const [k, v] of Object.entries(values)) {
    ops.push({ op: "add", path: `/metadata/annotations/${escape(k)}`, value: v });
  }
  return ops;
}

// A stored decision is checked against the VM on every no-change request: its annotation texts
// are kept per (immutable) value object rather than re-encoded each time.
const annotationTexts = new WeakMap<Res, string>();

function annotationText(r: Res): string {
  let t = annotationTexts.get(r);
  if (t === undefined) {
    t = resourcesAnnotation(r);
    annotationTexts.set(r, t);
  }
  return t;
}

/** True when the VM already carries exactly this decision. */
export function isRecorded(view: VmView, d: Decision): boolean {
  return view.rawApproved === annotationText(d.approved) &&
    view.rawRequested === annotationText(d.requested) &&
    view.rawScalingUnit === annotationText(d.scalingUnit);
}

/** Outcome counter hook (for `autoscaling_plugin_k8s_ops_total`). */
export type K8sOpObserver = (op: string, kind: string, outcome: "success" | "failure") => void;

/** Options for {@linkcode VmAnnotationWriter}. */
export interface VmWriterOptions {
  /** The accounting state. */
  state: ClusterState;
  /** API calls. */
  kube: SchedulerKube;
  /** Applies a VM object read or returned by a patch to the state (newer-only). */
  applyVm: (raw: unknown) => void;
  /** Logger. */
  logger: Logger;
  /** Clock for retry waits. */
  clock: Clock;
  /** Wait between write-behind retries. */
  retryMs: number;
  /** Write-behind attempts before giving up (the next request writes again). */
  maxAttempts?: number;
  /** Metric hook. */
  observe?: K8sOpObserver;
  /** VM API calls in flight at most (default unbounded); increases queue before write-behinds. */
  maxConcurrentCalls?: number;
  /** Cancels retries on shutdown. */
  signal: AbortSignal;
}

/** A FIFO of waiters that does not copy on every dequeue. */
class WaitQueue {
  #items: (() => void)[] = [];
  #head = 0;

  get size(): number {
    return this.#items.length - this.#head;
  }

  push(f: () => void): void {
    this.#items.push(f);
  }

  shift(): (() => void) | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const f = this.#items[this.#head++];
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return f;
  }
}

/** A counting semaphore whose urgent waiters are served before the others. */
export class CallSlots {
  #free: number;
  readonly #urgent = new WaitQueue();
  readonly #normal = new WaitQueue();

  /** Creates `n` slots (`Infinity` for no limit). */
  constructor(n: number) {
    this.#free = n;
  }

  /** Callers waiting for a slot. */
  get waiting(): number {
    return this.#urgent.size + this.#normal.size;
  }

  /** Takes a slot, waiting for one when none is free. */
  acquire(urgent: boolean): Promise<void> {
    if (this.#free > 0) {
      this.#free--;
      return Promise.resolve();
    }
    return new Promise((resolve) => (urgent ? this.#urgent : this.#normal).push(resolve));
  }

  /** Gives a slot back (to the first urgent waiter, else the first other one). */
  release(): void {
    const next = this.#urgent.shift() ?? this.#normal.shift();
    if (next !== undefined) next();
    else this.#free++;
  }
}

/** Serialises annotation writes per VM. */
export class VmAnnotationWriter {
  readonly #o: VmWriterOptions;
  readonly #chains = new Map<string, Promise<void>>();
  readonly #slots: CallSlots;

  /** Creates a writer. */
  constructor(options: VmWriterOptions) {
    this.#o = options;
    this.#slots = new CallSlots(options.maxConcurrentCalls ?? Infinity);
  }

  /** Number of VMs with writes queued or running. */
  get busy(): number {
    return this.#chains.size;
  }

  /** Writes the VM's latest decision; resolves once it is on the VM object, rejects otherwise. */
  persist(vmKey: string): Promise<void> {
    return this.#enqueue(vmKey, () => this.#write(vmKey, true));
  }

  /** Writes the VM's latest decision in the background, retrying a few times on failure. */
  writeBehind(vmKey: string): void {
    const entry = this.#o.state.vms.get(vmKey);
    if (
      !this.#chains.has(vmKey) && entry?.view !== undefined && entry.decision !== undefined &&
      isRecorded(entry.view, entry.decision)
    ) {
      return; // already on the VM and nothing queued: no write needed
    }
    const attempts = this.#o.maxAttempts ?? 5;
    const run = async (): Promise<void> => {
      for (let i = 1; i <= attempts; i++) {
        try {
          await this.#write(vmKey, false);
          return;
        } catch (error) {
          if (this.#o.signal.aborted || (error instanceof RemoteError && error.status === 404)) {
            return; // shutting down, or the VM is gone: nothing left to record
          }
          this.#o.logger.warn("Write-behind of VM annotations failed", {
            virtualmachine: vmKey,
            attempt: i,
            error,
          });
          try {
            await this.#o.clock.sleep(this.#o.retryMs, this.#o.signal);
          } catch {
            return; // shutdown
          }
        }
      }
    };
    // Failures are handled inside `run`; the chain itself never rejects.
    this.#enqueue(vmKey, run).catch((error) =>
      this.#o.logger.error("Write-behind crashed", { virtualmachine: vmKey, error })
    );
  }

  #enqueue(vmKey: string, fn: () => Promise<void>): Promise<void> {
    const prev = this.#chains.get(vmKey) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tracked = next.then(() => {}, () => {});
    this.#chains.set(vmKey, tracked);
    tracked.then(() => {
      if (this.#chains.get(vmKey) === tracked) this.#chains.delete(vmKey);
    });
    return next;
  }

  async #write(vmKey: string, urgent: boolean): Promise<void> {
    const [namespace = "", name = ""] = vmKey.split("/");
    for (let attempt = 0; attempt < 2; attempt++) {
      const entry = this.#o.state.vms.get(vmKey);
      const d = entry?.decision;
      if (d === undefined) return;
      let view = entry?.view;
      if (view === undefined) {
        this.#o.applyVm(await this.#call("get", urgent, () => this.#o.kube.getVm(namespace, name)));
        view = this.#o.state.vms.get(vmKey)?.view;
        if (view === undefined) {
          throw new RemoteError(`VirtualMachine "${vmKey}" not found`, { status: 404 });
        }
      }
      if (isRecorded(view, d)) return;
      const ops = buildApprovalPatch(view, d);
      const approved = d.approved;
      beginWrite(this.#o.state, vmKey, approved);
      try {
        const result = await this.#call(
          "patch",
          urgent,
          () => this.#o.kube.patchVm(namespace, name, ops),
        );
        this.#o.applyVm(result);
        return;
      } catch (error) {
        if (!(error instanceof RemoteError && error.status === 422) || attempt > 0) {
          throw new RemoteError(
            `Cannot patch VirtualMachine "${vmKey}": annotations not recorded`,
            {
              status: error instanceof RemoteError ? error.status : undefined,
              cause: error,
            },
          );
        }
        // Our view was stale ("local state doesn't match most recent VM state"): re-read, retry.
        this.#o.applyVm(await this.#call("get", urgent, () => this.#o.kube.getVm(namespace, name)));
      } finally {
        endWrite(this.#o.state, vmKey, approved);
      }
    }
  }

  async #call<T>(op: string, urgent: boolean, fn: () => Promise<T>): Promise<T> {
    // The slot is taken before `fn` starts, so waiting for one does not eat the call's timeout.
    await this.#slots.acquire(urgent);
    try {
      const r = await fn();
      this.#o.observe?.(op, "VirtualMachine", "success");
      return r;
    } catch (error) {
      this.#o.observe?.(op, "VirtualMachine", "failure");
      throw error;
    } finally {
      this.#slots.release();
    }
  }
}
