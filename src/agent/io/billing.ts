/**
 * Billing collection (§1.7): tracks billable VMs on this node (annotation
 * `autoscaling.neon.tech/billing-endpoint-id`, alive phase, `status.cpus` set) from VM events,
 * samples them every `collectEverySeconds`, turns the totals into events every
 * `accumulateEverySeconds` (core/billing.ts) and pushes batches to an HTTP endpoint
 * (`POST <url>/usage_events`, body `{"events":[…]}`) or a file (JSON lines). Decides nothing.
 * @module
 */
import type { AgentConfig } from "../../api/agent_config.ts";
import { isAlivePhase } from "../../api/virtualmachine.ts";
import type { Clock } from "../../lib/clock.ts";
import { RemoteError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { TaskGroup } from "../../lib/task_group.ts";
import {
  accumulate,
  type BillingSample,
  type BillingState,
  collect,
  type IncrementalEvent,
  type KeyedEvent,
  withIdempotencyKeys,
} from "../core/billing.ts";
import { deadline } from "./_deadline.ts";
import type { VmEvent } from "./global.ts";

/** Annotation that makes a VM billable. */
export const ANNOTATION_BILLING_ENDPOINT_ID = "autoscaling.neon.tech/billing-endpoint-id";

/** Sends one batch of keyed events. */
export type PushEvents = (
  events: readonly KeyedEvent[],
  signal: AbortSignal,
) => Promise<void>;

/** POSTs `{"events": [...]}` to `<url>/usage_events`. */
export function httpPusher(url: string, timeoutMs: number): PushEvents {
  const target = url.replace(/\/+$/, "") + "/usage_events";
  return async (events, signal) => {
    using d = deadline(signal, timeoutMs, "billing push");
    const res = await fetch(target, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ events }),
      signal: d.signal,
    });
    await res.body?.cancel();
    if (!res.ok) {
      throw new RemoteError(`billing push answered ${res.status}`, { status: res.status });
    }
  };
}

/** Appends events as JSON lines to a file. */
export function filePusher(path: string): PushEvents {
  return async (events) => {
    await Deno.writeTextFile(path, events.map((e) => JSON.stringify(e) + "\n").join(""), {
      append: true,
      create: true,
    });
  };
}

/** Options of {@linkcode BillingCollector}. */
export interface BillingOptions {
  /** Agent config (billing section). */
  readonly config: AgentConfig;
  /** This node. */
  readonly nodeName: string;
  /** Hostname for idempotency keys. */
  readonly hostname: string;
  /** Time source. */
  readonly clock: Clock;
  /** Logger. */
  readonly logger: Logger;
  /** Where batches go. */
  readonly push: PushEvents;
  /** Push interval. */
  readonly pushEveryMs: number;
  /** Events per push. */
  readonly maxBatchSize: number;
}

/** Collects, accumulates and pushes billing events. */
export class BillingCollector {
  readonly #opts: BillingOptions;
  readonly #vms = new Map<string, BillingSample>();
  #state: BillingState = new Map();
  #queue: IncrementalEvent[] = [];
  /** Events pushed so far. */
  pushed = 0;

  /** Creates a collector. */
  constructor(opts: BillingOptions) {
    this.#opts = opts;
  }

  /** Updates the set of billable VMs from a VM event. */
  handle(ev: VmEvent): void {
    const vm = ev.vm;
    const key = `${vm.metadata.namespace}/${vm.metadata.name}`;
    const endpointId = vm.metadata.annotations?.[ANNOTATION_BILLING_ENDPOINT_ID];
    const st = vm.status;
    if (
      ev.type === "upsert" && endpointId && st?.node === this.#opts.nodeName &&
      isAlivePhase(st.phase) && st.cpus !== undefined
    ) {
      this.#vms.set(key, { key, endpointId, milliCpu: st.cpus });
    } else this.#vms.delete(key);
  }

  /** One collect round (exposed for tests). */
  collectNow(): void {
    this.#state = collect(this.#state, [...this.#vms.values()], this.#opts.clock.now());
  }

  /** One accumulate round (exposed for tests). */
  accumulateNow(): void {
    const b = this.#opts.config.billing;
    const r = accumulate(this.#state, { cpu: b.cpuMetricName, activeTime: b.activeTimeMetricName });
    this.#state = r.state;
    this.#queue.push(...r.events);
    if (this.#queue.length > 100_000) this.#queue.splice(0, this.#queue.length - 100_000);
  }

  /** Pushes queued events in batches; stops at the first failure (retried next time). */
  async pushNow(signal: AbortSignal): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.slice(0, this.#opts.maxBatchSize);
      const keyed = withIdempotencyKeys(batch, this.#opts.clock.now(), this.#opts.hostname);
      try {
        await this.#opts.push(keyed, signal);
      } catch (error) {
        if (signal.aborted) return;
        this.#opts.logger.warn("cannot push billing events; will retry", { error });
        return;
      }
      this.#queue.splice(0, batch.length);
      this.pushed += batch.length;
    }
  }

  /** Runs the collect, accumulate and push loops until the signal aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const { clock, config } = this.#opts;
    const every = async (ms: number, s: AbortSignal, fn: () => void | Promise<void>) => {
      while (!s.aborted) {
        try {
          await clock.sleep(ms, s);
        } catch {
          return; // Stopping.
        }
        await fn();
      }
    };
    await using tg = new TaskGroup(signal);
    tg.spawn(
      "billing-collect",
      (s) => every(config.billing.collectEverySeconds * 1000, s, () => this.collectNow()),
    );
    tg.spawn(
      "billing-accumulate",
      (s) => every(config.billing.accumulateEverySeconds * 1000, s, () => this.accumulateNow()),
    );
    tg.spawn("billing-push", (s) => every(this.#opts.pushEveryMs, s, () => this.pushNow(s)));
    await tg.wait();
  }
}
