import assert from "node:assert/strict";
import { GiB } from "../../api/quantity.ts";
import { FakeClock } from "../../lib/clock.ts";
import { RemoteError } from "../../lib/errors.ts";
import { jsonPatch } from "../../lib/k8s/_fake_apiserver.ts";
import { memoryLogger } from "../../lib/log.ts";
import { node, request, testState, vmPod } from "../core/_fixtures.ts";
import { applyPermit, decidePermit } from "../core/permit.ts";
import { upsertNode, upsertPod } from "../core/state.ts";
import { ClusterSync } from "./cluster_sync.ts";
import type { SchedulerKube } from "./kube.ts";
import { buildApprovalPatch, CallSlots, VmAnnotationWriter } from "./vm_writer.ts";

const APPROVED = "internal.autoscaling.neon.tech/resources-approved";

/** A one-VM API: JSON patch with real `test` semantics, optional failures and a gate. */
function fakeKube(vm: Record<string, unknown>) {
  let cur = structuredClone(vm);
  let rv = 10;
  const calls: string[] = [];
  let failWith: number | undefined;
  const kube: SchedulerKube = {
    patchVm(_ns, _name, ops) {
      calls.push(`patch ${JSON.stringify(ops)}`);
      if (failWith !== undefined) {
        const s = failWith;
        failWith = undefined;
        return Promise.reject(new RemoteError("injected", { status: s }));
      }
      try {
        cur = jsonPatch(cur, ops) as Record<string, unknown>;
      } catch (cause) {
        return Promise.reject(new RemoteError("test failed", { status: 422, cause }));
      }
      (cur.metadata as Record<string, unknown>).resourceVersion = String(++rv);
      return Promise.resolve(structuredClone(cur));
    },
    getVm() {
      calls.push("get");
      return Promise.resolve(structuredClone(cur));
    },
    getPod: () => Promise.reject(new Error("unused")),
    bindPod: () => Promise.reject(new Error("unused")),
    createMigration: () => Promise.reject(new Error("unused")),
    deleteMigration: () => Promise.reject(new Error("unused")),
  };
  return {
    kube,
    calls,
    current: () => cur,
    failNext: (s: number) => (failWith = s),
    setAnnotation(v: string) {
      const meta = cur.metadata as {
        annotations?: Record<string, string>;
        resourceVersion: string;
      };
      meta.annotations = { ...(meta.annotations ?? {}), [APPROVED]: v };
      meta.resourceVersion = String(++rv);
    },
  };
}

function vmObject(annotations?: Record<string, string>): Record<string, unknown> {
  return {
    metadata: {
      name: "vm",
      namespace: "default",
      uid: "vmuid-default-vm",
      resourceVersion: "5",
      ...(annotations ? { annotations } : {}),
    },
    spec: { guest: { cpus: { use: 1 }, memorySlots: { use: 1 }, memorySlotSize: "1Gi" } },
  };
}

function setup(annotations?: Record<string, string>) {
  const state = testState();
  upsertNode(state, node("n1", 4000, 8 * GiB));
  upsertPod(state, vmPod("vm", { node: "n1", actual: { cpu: 1000, mem: GiB } }));
  const sync = new ClusterSync(state, memoryLogger());
  const api = fakeKube(vmObject(annotations));
  sync.vm(api.current());
  const writer = new VmAnnotationWriter({
    state,
    kube: api.kube,
    applyVm: (raw) => sync.vm(raw),
    logger: memoryLogger(),
    clock: new FakeClock(),
    retryMs: 1000,
    signal: new AbortController().signal,
  });
  return { state, sync, api, writer };
}

Deno.test("writer: first write adds the annotations map guarded by a null test", async () => {
  const { state, api, writer } = setup();
  const g = decidePermit(state, request("vm", { cpu: 2000, mem: GiB }));
  assert.equal(g.kind, "grant");
  if (g.kind !== "grant") return;
  applyPermit(state, g);
  const view = state.vms.get("default/vm")!.view!;
  assert.deepEqual(buildApprovalPatch(view, g.decision), [
    { op: "test", path: "/metadata/annotations", value: null },
    {
      op: "add",
      path: "/metadata/annotations",
      value: {
        "autoscaling.neon.tech/scaling-unit": `{"vCPUs":"250m","mem":"1Gi"}`,
        "internal.autoscaling.neon.tech/resources-requested": `{"vCPUs":2,"mem":"1Gi"}`,
        [APPROVED]: `{"vCPUs":2,"mem":"1Gi"}`,
      },
    },
  ]);
  await writer.persist("default/vm");
  const ann = (api.current().metadata as { annotations: Record<string, string> }).annotations;
  assert.equal(ann[APPROVED], `{"vCPUs":2,"mem":"1Gi"}`);
  // The patch response was applied: the view now shows the recorded value.
  assert.deepEqual(state.vms.get("default/vm")!.view!.approved, { cpu: 2000, mem: GiB });
  assert.deepEqual(state.vms.get("default/vm")!.writing, []);
});

Deno.test("writer: a stale view fails the test guard, is re-read, and the write is retried", async () => {
  const { state, api, writer } = setup({ [APPROVED]: `{"vCPUs":1,"mem":"1Gi"}` });
  // Someone else changed the approval since our last look.
  api.setAnnotation(`{"vCPUs":"1500m","mem":"1Gi"}`);
  const g = decidePermit(state, request("vm", { cpu: 2000, mem: GiB }, { cpu: 1000, mem: GiB }));
  if (g.kind !== "grant") throw new Error("expected grant");
  applyPermit(state, g);
  await writer.persist("default/vm");
  assert.equal(api.calls.filter((c) => c === "get").length, 1);
  const ann = (api.current().metadata as { annotations: Record<string, string> }).annotations;
  assert.equal(ann[APPROVED], `{"vCPUs":2,"mem":"1Gi"}`);
});

Deno.test("writer: a server error rejects persist and leaves the write unregistered", async () => {
  const { state, api, writer } = setup({ [APPROVED]: `{"vCPUs":1,"mem":"1Gi"}` });
  const g = decidePermit(state, request("vm", { cpu: 2000, mem: GiB }, { cpu: 1000, mem: GiB }));
  if (g.kind !== "grant") throw new Error("expected grant");
  applyPermit(state, g);
  api.failNext(500);
  await assert.rejects(writer.persist("default/vm"), (e: Error) => e instanceof RemoteError);
  assert.deepEqual(state.vms.get("default/vm")!.writing, []);
  // The increase stays counted.
  assert.equal(state.nodes.get("n1")!.sums.reserved.cpu, 2000);
});

Deno.test("sync: an older VM copy never replaces a newer one", () => {
  const { state, sync } = setup({ [APPROVED]: `{"vCPUs":2,"mem":"1Gi"}` });
  const old = vmObject({ [APPROVED]: `{"vCPUs":1,"mem":"1Gi"}` });
  (old.metadata as Record<string, unknown>).resourceVersion = "3";
  sync.vm(old);
  assert.deepEqual(state.vms.get("default/vm")!.view!.approved, { cpu: 2000, mem: GiB });
});

Deno.test("call slots: at most n holders; urgent waiters are served first, then in order", async () => {
  const slots = new CallSlots(2);
  const order: string[] = [];
  await slots.acquire(false);
  await slots.acquire(false);
  const a = slots.acquire(false).then(() => order.push("a"));
  const b = slots.acquire(false).then(() => order.push("b"));
  const c = slots.acquire(true).then(() => order.push("c"));
  assert.equal(slots.waiting, 3);
  slots.release();
  await c;
  assert.deepEqual(order, ["c"]);
  slots.release();
  await a;
  slots.release();
  await b;
  assert.deepEqual(order, ["c", "a", "b"]);
  assert.equal(slots.waiting, 0);
});

Deno.test("writer: maxConcurrentCalls bounds VM patches in flight; an increase goes first", async () => {
  const state = testState();
  upsertNode(state, node("n1", 64_000, 64 * GiB));
  const sync = new ClusterSync(state, memoryLogger());
  const names = ["a", "b", "c", "d", "e"];
  const objects = new Map<string, Record<string, unknown>>();
  for (const n of names) {
    upsertPod(state, vmPod(n, { node: "n1", actual: { cpu: 1000, mem: GiB } }));
    const o = vmObject({ [APPROVED]: `{"vCPUs":1,"mem":"1Gi"}` });
    Object.assign(o.metadata as Record<string, unknown>, { name: n, uid: `vmuid-default-${n}` });
    objects.set(n, o);
    sync.vm(structuredClone(o));
  }
  let inFlight = 0;
  let most = 0;
  const started: string[] = [];
  const gates: (() => void)[] = [];
  const kube: SchedulerKube = {
    patchVm(_ns, name, ops) {
      started.push(name);
      inFlight++;
      most = Math.max(most, inFlight);
      return new Promise((resolve, reject) => {
        gates.push(() => {
          inFlight--;
          try {
            const next = jsonPatch(objects.get(name), ops) as Record<string, unknown>;
            (next.metadata as Record<string, unknown>).resourceVersion = "99";
            objects.set(name, next);
            resolve(structuredClone(next));
          } catch (cause) {
            reject(new RemoteError("test failed", { status: 422, cause }));
          }
        });
      });
    },
    getVm: (_ns, name) => Promise.resolve(structuredClone(objects.get(name))),
    getPod: () => Promise.reject(new Error("unused")),
    bindPod: () => Promise.reject(new Error("unused")),
    createMigration: () => Promise.reject(new Error("unused")),
    deleteMigration: () => Promise.reject(new Error("unused")),
  };
  const writer = new VmAnnotationWriter({
    state,
    kube,
    applyVm: (raw) => sync.vm(raw),
    logger: memoryLogger(),
    clock: new FakeClock(),
    retryMs: 1000,
    signal: new AbortController().signal,
    maxConcurrentCalls: 2,
  });
  const decide = (n: string, cpu: number, last: number) => {
    const g = decidePermit(state, request(n, { cpu, mem: GiB }, { cpu: last, mem: GiB }));
    if (g.kind !== "grant") throw new Error("expected grant");
    applyPermit(state, g);
    return g;
  };
  // Four decreases written behind, then one increase that must be persisted.
  for (const n of ["a", "b", "c", "d"]) {
    assert.equal(decide(n, 500, 1000).mustPersist, false);
    writer.writeBehind(`default/${n}`);
  }
  assert.equal(decide("e", 2000, 1000).mustPersist, true);
  const persisted = writer.persist("default/e");
  const settle = () => new Promise((r) => setTimeout(r, 0));
  await settle();
  assert.deepEqual(started, ["a", "b"]);
  for (let i = 0; started.length < 5 || gates.length > 0; i++) {
    assert.ok(i < 20, "writes did not finish");
    gates.shift()?.();
    await settle();
  }
  await persisted;
  assert.equal(most, 2);
  // The increase took the first free slot, ahead of the write-behinds queued before it.
  assert.deepEqual(started, ["a", "b", "e", "c", "d"]);
  const ann = (o: Record<string, unknown> | undefined, k: string) =>
    (o?.metadata as { annotations: Record<string, string> }).annotations[k];
  assert.equal(ann(objects.get("e"), APPROVED), `{"vCPUs":2,"mem":"1Gi"}`);
  // A decrease is recorded as requested; the approval drops once the agent acknowledges it.
  assert.equal(
    ann(objects.get("d"), "internal.autoscaling.neon.tech/resources-requested"),
    `{"vCPUs":"500m","mem":"1Gi"}`,
  );
  assert.equal(writer.busy, 0);
});
