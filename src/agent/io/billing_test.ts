/** Tests of the billing collector: which VMs are billable, and the pushed batches. */
import assert from "node:assert/strict";
import { defaultAgentConfig } from "../../api/agent_config.ts";
import { type VirtualMachine, VirtualMachineSchema } from "../../api/virtualmachine.ts";
import { FakeClock } from "../../lib/clock.ts";
import { memoryLogger } from "../../lib/log.ts";
import type { KeyedEvent } from "../core/billing.ts";
import { BillingCollector } from "./billing.ts";

function vm(
  name: string,
  cpus: string | undefined,
  node = "n1",
  endpoint: string | undefined = `ep-${name}`,
) {
  return VirtualMachineSchema.parse({
    apiVersion: "vm.neon.tech/v1",
    kind: "VirtualMachine",
    metadata: {
      name,
      namespace: "ns",
      annotations: endpoint ? { "autoscaling.neon.tech/billing-endpoint-id": endpoint } : {},
    },
    spec: {
      guest: {
        cpus: { min: "250m", max: 2, use: "500m" },
        memorySlots: { min: 1, max: 4, use: 1 },
        rootDisk: { image: "img" },
      },
    },
    status: { phase: "Running", node, ...(cpus ? { cpus } : {}) },
  }) as VirtualMachine;
}

Deno.test("billable VMs are billed and pushed in keyed batches", async () => {
  const clock = new FakeClock(Date.UTC(2026, 0, 1));
  const batches: KeyedEvent[][] = [];
  let fail = true;
  const b = new BillingCollector({
    config: defaultAgentConfig(),
    nodeName: "n1",
    hostname: "h",
    clock,
    logger: memoryLogger(),
    push: (events) => {
      if (fail) return Promise.reject(new Error("endpoint down"));
      batches.push([...events]);
      return Promise.resolve();
    },
    pushEveryMs: 1000,
    maxBatchSize: 3,
  });
  b.handle({ type: "upsert", vm: vm("a", "500m") });
  b.handle({ type: "upsert", vm: vm("b", "1") });
  b.handle({ type: "upsert", vm: vm("off-node", "1", "n2") });
  b.handle({ type: "upsert", vm: vm("no-cpus", undefined) });
  b.handle({ type: "upsert", vm: vm("no-annotation", "1", "n1", "") });
  b.collectNow();
  await clock.advance(4000);
  b.collectNow();
  b.accumulateNow();
  await b.pushNow(new AbortController().signal);
  assert.equal(batches.length, 0, "a failed push keeps the events");
  fail = false;
  await b.pushNow(new AbortController().signal);
  assert.equal(b.pushed, 4);
  assert.deepEqual(batches.map((x) => x.length), [3, 1]);
  const all = batches.flat();
  const value = (ep: string, metric: string) =>
    all.find((e) => e.endpoint_id === ep && e.metric === metric)?.value;
  assert.equal(value("ep-a", "effective_compute_seconds"), 2);
  assert.equal(value("ep-b", "effective_compute_seconds"), 4);
  assert.equal(value("ep-a", "active_time_seconds"), 4);
  assert.equal(all[0]!.idempotency_key, "2026-01-01T00:00:04.000000Z-h-0/3");
});
