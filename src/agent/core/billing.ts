/**
 * Billing accumulation (reference §1.7): every `collectEverySeconds` the agent samples each
 * billable VM's `status.cpus`; the slice between two samples is billed at the lower of the two
 * values (deliberate under-billing, as the reference); every `accumulateEverySeconds` each VM's
 * totals become two incremental events (`effective_compute_seconds`, `active_time_seconds`) and
 * reset. Idempotency keys are added when a batch is pushed.
 * Pure: no I/O; `now` is a parameter.
 * @module
 */

/** A billable VM as sampled: its endpoint and current CPU (MilliCPU). */
export interface BillingSample {
  /** `namespace/name` of the VM. */
  readonly key: string;
  /** `autoscaling.neon.tech/billing-endpoint-id`. */
  readonly endpointId: string;
  /** `status.cpus`, MilliCPU. */
  readonly milliCpu: number;
}

/** Per-VM totals of the current accumulation period. */
export interface BillingTotals {
  /** Endpoint id. */
  readonly endpointId: string;
  /** Last sample (time and CPU). */
  readonly last: { readonly atMs: number; readonly milliCpu: number };
  /** Start of the billed period (first sample of the period). */
  readonly startMs: number;
  /** Σ vCPU × seconds. */
  readonly cpuSeconds: number;
  /** Σ seconds the VM was seen alive. */
  readonly activeSeconds: number;
  /** False once the VM was not seen in a collect (still emitted once, then dropped). */
  readonly present: boolean;
}

/** Billing state by VM key. */
export type BillingState = ReadonlyMap<string, BillingTotals>;

/** An incremental usage event, without its idempotency key. */
export interface IncrementalEvent {
  /** Metric name. */
  readonly metric: string;
  /** Always `incremental`. */
  readonly type: "incremental";
  /** Endpoint id. */
  readonly endpoint_id: string;
  /** RFC 3339 start. */
  readonly start_time: string;
  /** RFC 3339 stop. */
  readonly stop_time: string;
  /** Rounded value. */
  readonly value: number;
}

/** Records one collect round at `nowMs`. */
export function collect(
  state: BillingState,
  samples: readonly BillingSample[],
  nowMs: number,
): BillingState {
  const next = new Map<string, BillingTotals>();
  const seen = new Set<string>();
  for (const s of samples) {
    seen.add(s.key);
    const prev = state.get(s.key);
    if (prev === undefined || !prev.present || prev.endpointId !== s.endpointId) {
      if (prev !== undefined && (prev.cpuSeconds > 0 || prev.activeSeconds > 0)) {
        // Endpoint changed: keep the old totals under a distinct key until the next accumulate.
        next.set(`${s.key}#${prev.endpointId}`, { ...prev, present: false });
      }
      next.set(s.key, {
        endpointId: s.endpointId,
        last: { atMs: nowMs, milliCpu: s.milliCpu },
        startMs: nowMs,
        cpuSeconds: 0,
        activeSeconds: 0,
        present: true,
      });
      continue;
    }
    const sliceS = Math.max(0, (nowMs - prev.last.atMs) / 1000);
    const cpu = Math.min(prev.last.milliCpu, s.milliCpu) / 1000;
    next.set(s.key, {
      ...prev,
      last: { atMs: nowMs, milliCpu: s.milliCpu },
      cpuSeconds: prev.cpuSeconds + cpu * sliceS,
      activeSeconds: prev.activeSeconds + sliceS,
    });
  }
  for (const [k, v] of state) {
    if (!seen.has(k) && !next.has(k)) next.set(k, { ...v, present: false });
  }
  return next;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** Turns the period's totals into events and starts a new period at each VM's last sample. */
export function accumulate(
  state: BillingState,
  metricNames: { readonly cpu: string; readonly activeTime: string },
): { state: BillingState; events: IncrementalEvent[] } {
  const events: IncrementalEvent[] = [];
  const next = new Map<string, BillingTotals>();
  for (const [k, t] of state) {
    if (t.last.atMs > t.startMs) {
      // Field order as the reference writes it.
      const ev = (metric: string, value: number): IncrementalEvent => ({
        metric,
        type: "incremental",
        endpoint_id: t.endpointId,
        start_time: iso(t.startMs),
        stop_time: iso(t.last.atMs),
        value,
      });
      events.push(ev(metricNames.cpu, Math.round(t.cpuSeconds)));
      events.push(ev(metricNames.activeTime, Math.round(t.activeSeconds)));
    }
    if (t.present) {
      next.set(k, { ...t, startMs: t.last.atMs, cpuSeconds: 0, activeSeconds: 0 });
    }
  }
  return { state: next, events };
}

/** An incremental event with its idempotency key, as pushed. */
export type KeyedEvent = IncrementalEvent & { readonly idempotency_key: string };

/** Adds idempotency keys `<RFC3339 µs UTC>-<hostname>-<n>/<batchSize>` to one pushed batch. */
export function withIdempotencyKeys(
  events: readonly IncrementalEvent[],
  nowMs: number,
  hostname: string,
): KeyedEvent[] {
  const ts = new Date(nowMs).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
  return events.map((e, i) => ({
    idempotency_key: `${ts}-${hostname}-${i}/${events.length}`,
    ...e,
  }));
}
