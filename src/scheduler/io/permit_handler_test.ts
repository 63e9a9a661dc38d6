import assert from "node:assert/strict";
import fc from "fast-check";
import { GiB } from "../../api/quantity.ts";
import { FakeClock } from "../../lib/clock.ts";
import { memoryLogger } from "../../lib/log.ts";
import { node, testState, vmPod, vmView } from "../core/_fixtures.ts";
import { upsertNode, upsertPod, upsertVm } from "../core/state.ts";
import type { SchedulerKube } from "./kube.ts";
import { createPermitHandler, MAX_BODY_BYTES, readLimited } from "./permit_handler.ts";
import { VmAnnotationWriter } from "./vm_writer.ts";

function handler() {
  const state = testState();
  upsertNode(state, node("n1", 4000, 8 * GiB));
  upsertPod(state, vmPod("vm", { node: "n1", actual: { cpu: 1000, mem: GiB } }));
  upsertVm(state, vmView("vm", { cpu: 1000, mem: GiB }));
  const kube: SchedulerKube = {
    patchVm: () => Promise.resolve({ metadata: { name: "vm", namespace: "default" } }),
    getVm: () => Promise.resolve({ metadata: { name: "vm", namespace: "default" } }),
    getPod: () => Promise.reject(new Error("unused")),
    bindPod: () => Promise.reject(new Error("unused")),
    createMigration: () => Promise.reject(new Error("unused")),
    deleteMigration: () => Promise.reject(new Error("unused")),
  };
  const writer = new VmAnnotationWriter({
    state,
    kube,
    applyVm: () => {},
    logger: memoryLogger(),
    clock: new FakeClock(),
    retryMs: 1000,
    signal: new AbortController().signal,
  });
  return createPermitHandler({
    state,
    writer,
    logger: memoryLogger(),
    clock: new FakeClock(),
    isLeader: () => true,
  });
}

Deno.test("readLimited: exactly 1 KiB passes, one byte more does not, chunked or not", async () => {
  const ok = "x".repeat(MAX_BODY_BYTES);
  assert.equal(
    (await readLimited(new Request("http://x/", { method: "POST", body: ok }), MAX_BODY_BYTES))
      ?.byteLength,
    MAX_BODY_BYTES,
  );
  assert.equal(
    await readLimited(new Request("http://x/", { method: "POST", body: ok + "y" }), MAX_BODY_BYTES),
    undefined,
  );
  const stream = (s: string) =>
    new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode(s.slice(0, 600)));
        c.enqueue(new TextEncoder().encode(s.slice(600)));
        c.close();
      },
    });
  const chunked = (s: string) => new Request("http://x/", { method: "POST", body: stream(s) });
  assert.equal((await readLimited(chunked(ok), MAX_BODY_BYTES))?.byteLength, MAX_BODY_BYTES);
  assert.equal(await readLimited(chunked(ok + "y"), MAX_BODY_BYTES), undefined);
});

Deno.test("property: arbitrary bodies never crash the permit handler (no 500)", async () => {
  const h = handler();
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.jsonValue().map((v) => JSON.stringify(v)),
        fc.string(),
        fc.record({
          protoVersion: fc.oneof(fc.integer({ min: -2, max: 9 }), fc.string()),
          pod: fc.record({
            namespace: fc.constantFrom("default", "x"),
            name: fc.constantFrom("vm-pod", "nope"),
          }),
          computeUnit: fc.record({
            vCPUs: fc.oneof(fc.nat(), fc.string()),
            mem: fc.oneof(fc.nat(), fc.string()),
          }),
          resources: fc.record({
            vCPUs: fc.oneof(fc.nat(), fc.string()),
            mem: fc.oneof(fc.nat(), fc.string()),
          }),
          lastPermit: fc.constant(null),
        }).map((v) => JSON.stringify(v)),
      ),
      async (body) => {
        const r = await h(new Request("http://s/", { method: "POST", body }));
        await r.body?.cancel();
        assert.ok([200, 400, 404].includes(r.status), `status ${r.status} for ${body}`);
      },
    ),
    { numRuns: 1000 },
  );
});
