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
import { buildApprovalPatch, VmAnnotationWriter } from "./vm_writer.ts";

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
