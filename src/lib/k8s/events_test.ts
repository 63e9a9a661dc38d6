import assert from "node:assert/strict";
import { FakeClock } from "../clock.ts";
import { memoryLogger } from "../log.ts";
import { FakeApiServer } from "./_fake_apiserver.ts";
import { KubeClient } from "./client.ts";
import { EventSchema } from "./core_types.ts";
import { EventRecorder } from "./events.ts";
import { EVENTS } from "./meta.ts";

Deno.test("events: repeats bump count and lastTimestamp; different messages are new events", async () => {
  await using srv = new FakeApiServer();
  using client = new KubeClient({ server: srv.url });
  const events = client.resource(EVENTS, EventSchema);
  const clock = new FakeClock(Date.UTC(2026, 0, 1));
  const logger = memoryLogger();
  const rec = new EventRecorder({ events, component: "neonvm-controller", clock, logger });
  const vm = {
    apiVersion: "vm.neon.tech/v1",
    kind: "VirtualMachine",
    metadata: { name: "vm", namespace: "ns", uid: "u1" },
  };
  await rec.record(vm, "Normal", "Created", "Created pod vm-abc");
  await clock.advance(5_000);
  await rec.record(vm, "Normal", "Created", "Created pod vm-abc");
  await rec.record(vm, "Warning", "QmpFailed", "boom");
  const list = await events.list({ namespace: "ns" });
  const byReason = Object.fromEntries(list.items.map((e) => [e.reason, e]));
  assert.equal(list.items.length, 2);
  assert.equal(byReason.Created?.count, 2);
  assert.equal(byReason.Created?.firstTimestamp, "2026-01-01T00:00:00Z");
  assert.equal(byReason.Created?.lastTimestamp, "2026-01-01T00:00:05Z");
  assert.equal(byReason.Created?.involvedObject.uid, "u1");
  assert.equal(byReason.QmpFailed?.type, "Warning");
  assert.equal(byReason.QmpFailed?.source?.component, "neonvm-controller");

  // A failing API is logged, never thrown.
  srv.intercept = () => Response.json({ message: "no" }, { status: 500 });
  await rec.record(vm, "Normal", "Other", "x");
  assert.equal(logger.lines.at(-1)?.msg, "cannot record event");
});
