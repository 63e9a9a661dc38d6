/** Tests of billing accumulation: min-of-two billing, periods, vanished VMs, idempotency keys. */
import assert from "node:assert/strict";
import { accumulate, type BillingState, collect, withIdempotencyKeys } from "./billing.ts";

const NAMES = { cpu: "effective_compute_seconds", activeTime: "active_time_seconds" };
const T0 = Date.UTC(2026, 0, 1, 0, 0, 0);

Deno.test("slices bill at the lower CPU of their two samples; totals reset per period", () => {
  let s: BillingState = new Map();
  s = collect(s, [{ key: "ns/a", endpointId: "ep-a", milliCpu: 1000 }], T0);
  s = collect(s, [{ key: "ns/a", endpointId: "ep-a", milliCpu: 2000 }], T0 + 4000); // 1 vCPU × 4 s
  s = collect(s, [{ key: "ns/a", endpointId: "ep-a", milliCpu: 500 }], T0 + 8000); // 0.5 × 4 s
  s = collect(s, [{ key: "ns/a", endpointId: "ep-a", milliCpu: 500 }], T0 + 12_000); // 0.5 × 4 s
  const r = accumulate(s, NAMES);
  assert.deepEqual(r.events, [
    {
      type: "incremental",
      endpoint_id: "ep-a",
      start_time: "2026-01-01T00:00:00.000Z",
      stop_time: "2026-01-01T00:00:12.000Z",
      metric: "effective_compute_seconds",
      value: 8,
    },
    {
      type: "incremental",
      endpoint_id: "ep-a",
      start_time: "2026-01-01T00:00:00.000Z",
      stop_time: "2026-01-01T00:00:12.000Z",
      metric: "active_time_seconds",
      value: 12,
    },
  ]);
  // The next period starts where this one stopped.
  s = collect(r.state, [{ key: "ns/a", endpointId: "ep-a", milliCpu: 500 }], T0 + 16_000);
  const r2 = accumulate(s, NAMES);
  assert.equal(r2.events[0]!.start_time, "2026-01-01T00:00:12.000Z");
  assert.equal(r2.events[0]!.value, 2);
});

Deno.test("a VM that disappears is billed once more, then dropped", () => {
  let s: BillingState = new Map();
  s = collect(s, [{ key: "ns/a", endpointId: "ep-a", milliCpu: 1000 }], T0);
  s = collect(s, [{ key: "ns/a", endpointId: "ep-a", milliCpu: 1000 }], T0 + 4000);
  s = collect(s, [], T0 + 8000);
  const r = accumulate(s, NAMES);
  assert.equal(r.events.length, 2);
  assert.equal(r.events[0]!.value, 4);
  assert.equal(r.state.size, 0);
  assert.deepEqual(accumulate(r.state, NAMES).events, []);
});

Deno.test("idempotency keys: microsecond UTC time, hostname, index/batch size", () => {
  const evs = accumulate(
    collect(
      collect(new Map(), [{ key: "k", endpointId: "e", milliCpu: 250 }], T0),
      [{ key: "k", endpointId: "e", milliCpu: 250 }],
      T0 + 4000,
    ),
    NAMES,
  ).events;
  const keyed = withIdempotencyKeys(evs, T0 + 123, "agent-1");
  assert.deepEqual(keyed.map((e) => e.idempotency_key), [
    "2026-01-01T00:00:00.123000Z-agent-1-0/2",
    "2026-01-01T00:00:00.123000Z-agent-1-1/2",
  ]);
  assert.equal(
    JSON.stringify(keyed[0]),
    '{"idempotency_key":"2026-01-01T00:00:00.123000Z-agent-1-0/2","metric":"effective_compute_seconds",' +
      '"type":"incremental","endpoint_id":"e","start_time":"2026-01-01T00:00:00.000Z",' +
      '"stop_time":"2026-01-01T00:00:04.000Z","value":1}',
  );
});
