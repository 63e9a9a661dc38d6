// In-process tests of the scheduler's io: the whole app (informers, permit API, extender, writer,
// migrations) against the in-memory API server of src/lib/k8s, handlers called without sockets.
import assert from "node:assert/strict";
import { DEFAULT_SCHEDULER_CONFIG, type SchedulerConfig } from "../../api/scheduler_config.ts";
import { systemClock } from "../../lib/clock.ts";
import { KubeClient } from "../../lib/k8s/client.ts";
import { FakeApiServer } from "../../lib/k8s/_fake_apiserver.ts";
import { memoryLogger } from "../../lib/log.ts";
import { SchedulerApp } from "./app.ts";

const PODS = "/api/v1/pods";
const NODES = "/api/v1/nodes";
const VMS = "/apis/vm.neon.tech/v1/virtualmachines";
const VMMS = "/apis/vm.neon.tech/v1/virtualmachinemigrations";
const APPROVED = "internal.autoscaling.neon.tech/resources-approved";

interface Loose {
  metadata: { annotations?: Record<string, string>; labels?: Record<string, string> };
  spec?: { nodeName?: string };
}
function loose(o: unknown): Loose {
  return o as Loose;
}

function seedNode(fake: FakeApiServer, name: string, cpu: string, mem: string) {
  fake.seed(NODES, {
    apiVersion: "v1",
    kind: "Node",
    metadata: { name },
    status: { allocatable: { cpu, memory: mem } },
  });
}

function seedVm(
  fake: FakeApiServer,
  name: string,
  o: {
    cpu: number;
    slots: number;
    node?: string;
    approved?: string;
    created?: string;
    labels?: Record<string, string>;
  },
) {
  const vm = fake.seed(VMS, {
    apiVersion: "vm.neon.tech/v1",
    kind: "VirtualMachine",
    metadata: {
      name,
      namespace: "default",
      ...(o.approved ? { annotations: { [APPROVED]: o.approved } } : {}),
    },
    spec: {
      guest: {
        cpus: { min: 0.25, max: 4, use: o.cpu },
        memorySlots: { min: 1, max: 16, use: o.slots },
        memorySlotSize: "1Gi",
      },
    },
  });
  const resources = JSON.stringify({
    cpus: { min: 0.25, max: 4, use: o.cpu },
    memorySlots: { min: 1, max: 16, use: o.slots },
    memorySlotSize: "1Gi",
  });
  fake.seed(PODS, {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: `${name}-pod`,
      namespace: "default",
      uid: `pod-uid-${name}`,
      creationTimestamp: o.created ?? "2026-01-01T00:00:00Z",
      labels: { "autoscaling.neon.tech/enabled": "true", ...(o.labels ?? {}) },
      annotations: { "vm.neon.tech/resources": resources },
      ownerReferences: [{
        apiVersion: "vm.neon.tech/v1",
        kind: "VirtualMachine",
        name,
        uid: vm.metadata.uid,
        controller: true,
      }],
    },
    spec: { schedulerName: "autoscale-scheduler", ...(o.node ? { nodeName: o.node } : {}) },
    status: { phase: o.node ? "Running" : "Pending" },
  });
}

async function startApp(
  fake: FakeApiServer,
  config: Partial<SchedulerConfig> = {},
  leaderElection?: { namespace: string; name: string; identity: string },
) {
  const client = new KubeClient({ server: "http://fake", fetch: (r) => fake.handle(r) });
  const logger = memoryLogger("scheduler");
  const app = new SchedulerApp({
    config: { ...DEFAULT_SCHEDULER_CONFIG, ...config },
    client,
    logger,
    clock: systemClock,
    random: () => 0.5,
    informerRetryMs: 50,
    leaderElection,
  });
  const stop = new AbortController();
  const running = app.run(stop.signal).catch((e) => {
    if (!stop.signal.aborted) throw e;
  });
  await waitFor(() => app.state.synced);
  return {
    app,
    logger,
    async stop() {
      stop.abort();
      fake.closeWatches();
      await running;
    },
  };
}

async function waitFor(cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

function permitRequest(body: unknown, method = "POST"): Request {
  return new Request("http://scheduler:10299/", {
    method,
    body: method === "POST" ? JSON.stringify(body) : undefined,
    headers: { "content-type": "application/json" },
  });
}

function agentReq(pod: string, vCPUs: number | string, mem: string, lastPermit: unknown = null) {
  return {
    protoVersion: 7,
    pod: { namespace: "default", name: pod },
    computeUnit: { vCPUs: "250m", mem: "1Gi" },
    resources: { vCPUs, mem },
    lastPermit,
    metrics: { loadAvg1M: 0.5 },
  };
}

Deno.test("permit API: error answers match the reference", async () => {
  await using fake = new FakeApiServer();
  seedNode(fake, "n1", "4", "16Gi");
  const t = await startApp(fake);
  try {
    const h = t.app.mainHandler;
    const get = await h(permitRequest(undefined, "GET"));
    assert.equal(get.status, 400);
    assert.equal(await get.text(), "must be POST\n");
    assert.equal(get.headers.get("content-type"), "text/plain; charset=utf-8");
    const bad = await h(new Request("http://s/", { method: "POST", body: "{nope" }));
    assert.equal(bad.status, 400);
    assert.equal(await bad.text(), "bad JSON\n");
    const big = await h(new Request("http://s/", { method: "POST", body: "x".repeat(2000) }));
    assert.equal(big.status, 400);
    assert.equal(await big.text(), "bad JSON\n");
    const v4 = await h(permitRequest({ ...agentReq("x", 1, "1Gi"), protoVersion: 6 }));
    assert.equal(v4.status, 400);
    assert.equal(await v4.text(), "protocol version mismatch: need v5.0 but got v4.0\n");
    const v0 = await h(permitRequest({ ...agentReq("x", 1, "1Gi"), protoVersion: 0 }));
    assert.equal(await v0.text(), "invalid protocol version\n");
    const cu = await h(
      permitRequest({ ...agentReq("x", 1, "1Gi"), computeUnit: { vCPUs: 0, mem: "1Gi" } }),
    );
    assert.equal(cu.status, 400);
    const missing = await h(permitRequest(agentReq("nope", 1, "1Gi")));
    assert.equal(missing.status, 404);
    assert.equal(await missing.text(), "pod not found\n");
  } finally {
    await t.stop();
  }
});

Deno.test("permit API: increase recorded on the VM before the answer; restart counts it once", async () => {
  await using fake = new FakeApiServer();
  seedNode(fake, "n1", "4", "16Gi");
  seedVm(fake, "a", { cpu: 1, slots: 2, node: "n1" });
  seedVm(fake, "b", { cpu: 2, slots: 2, node: "n1", approved: `{"vCPUs":2,"mem":"2Gi"}` });
  let t = await startApp(fake);
  try {
    // First request, no change: must be recorded (no approved annotation yet).
    const r0 = await t.app.mainHandler(permitRequest(agentReq("a-pod", 1, "2Gi")));
    assert.equal(r0.status, 200);
    assert.equal(await r0.text(), `{"permit":{"vCPUs":1,"mem":"2Gi"}}`);
    assert.equal(
      loose(fake.object(VMS, "default", "a")).metadata.annotations![APPROVED],
      `{"vCPUs":1,"mem":"2Gi"}`,
    );
    // Increase: node has 4 CPUs, b holds 2, a holds 1 → a may grow by 1 (4 units of 250m).
    const r1 = await t.app.mainHandler(
      permitRequest(agentReq("a-pod", 3, "2Gi", { vCPUs: 1, mem: "2Gi" })),
    );
    assert.equal(r1.status, 200);
    assert.equal(await r1.text(), `{"permit":{"vCPUs":2,"mem":"2Gi"}}`);
    const ann = loose(fake.object(VMS, "default", "a")).metadata.annotations!;
    assert.equal(ann[APPROVED], `{"vCPUs":2,"mem":"2Gi"}`);
    assert.equal(
      ann["internal.autoscaling.neon.tech/resources-requested"],
      `{"vCPUs":3,"mem":"2Gi"}`,
    );
    assert.equal(ann["autoscaling.neon.tech/scaling-unit"], `{"vCPUs":"250m","mem":"1Gi"}`);
    assert.deepEqual(t.app.state.nodes.get("n1")!.sums.reserved.cpu, 4000);
  } finally {
    await t.stop();
  }
  // Restart: the approval is rebuilt from the VM object, counted once, and the agent (which did
  // get its answer) repeating its request gets the same permit without a new patch.
  t = await startApp(fake);
  try {
    assert.equal(t.app.state.nodes.get("n1")!.sums.reserved.cpu, 4000);
    const patchesBefore = fake.requests.filter((r) => r.startsWith("PATCH")).length;
    const r2 = await t.app.mainHandler(
      permitRequest(agentReq("a-pod", 3, "2Gi", { vCPUs: 2, mem: "2Gi" })),
    );
    assert.equal(await r2.text(), `{"permit":{"vCPUs":2,"mem":"2Gi"}}`);
    assert.equal(t.app.state.nodes.get("n1")!.sums.reserved.cpu, 4000);
    await waitFor(() => t.app.pendingWrites === 0);
    const patchesAfter = fake.requests.filter((r) => r.startsWith("PATCH")).length;
    assert.ok(patchesAfter - patchesBefore <= 1, "at most the requested annotation is rewritten");
  } finally {
    await t.stop();
  }
});

Deno.test("permit API: a failed VM patch answers 500 and keeps the increase counted", async () => {
  await using fake = new FakeApiServer();
  seedNode(fake, "n1", "4", "16Gi");
  seedVm(fake, "a", { cpu: 1, slots: 2, node: "n1", approved: `{"vCPUs":1,"mem":"2Gi"}` });
  const t = await startApp(fake);
  try {
    fake.intercept = (req) =>
      req.method === "PATCH" ? new Response("boom", { status: 500 }) : undefined;
    const r = await t.app.mainHandler(
      permitRequest(agentReq("a-pod", 2, "2Gi", { vCPUs: 1, mem: "2Gi" })),
    );
    assert.equal(r.status, 500);
    assert.equal(await r.text(), "failed to patch VM object\n");
    // Conservative: the undecided increase stays reserved until it is recorded or re-decided.
    assert.equal(t.app.state.nodes.get("n1")!.sums.reserved.cpu, 2000);
    fake.intercept = undefined;
    const again = await t.app.mainHandler(
      permitRequest(agentReq("a-pod", 2, "2Gi", { vCPUs: 1, mem: "2Gi" })),
    );
    assert.equal(await again.text(), `{"permit":{"vCPUs":2,"mem":"2Gi"}}`);
    assert.equal(
      loose(fake.object(VMS, "default", "a")).metadata.annotations![APPROVED],
      `{"vCPUs":2,"mem":"2Gi"}`,
    );
  } finally {
    await t.stop();
  }
});

Deno.test("extender: filter gives reasons, bind records then binds, prioritize scores", async () => {
  await using fake = new FakeApiServer();
  seedNode(fake, "n1", "2", "8Gi");
  seedNode(fake, "n2", "4", "8Gi");
  seedVm(fake, "big", { cpu: 2, slots: 2, node: "n1" });
  seedVm(fake, "new", { cpu: 1, slots: 1 });
  const t = await startApp(fake);
  try {
    const pod = fake.object(PODS, "default", "new-pod")!;
    const call = (verb: string, body: unknown) =>
      t.app.mainHandler(
        new Request(`http://127.0.0.1:10299/scheduler/${verb}`, {
          method: "POST",
          body: JSON.stringify(body),
        }),
      );
    const f = await (await call("filter", { Pod: pod, Nodes: null, NodeNames: ["n1", "n2"] }))
      .json();
    assert.deepEqual(f.NodeNames, ["n2"]);
    assert.equal(
      f.FailedNodes.n1,
      "autoscale-scheduler: not enough resources (cpu: pod needs 1, 0 of 2 free)",
    );
    assert.equal(f.Error, "");
    const p = await (await call("prioritize", { Pod: pod, Nodes: null, NodeNames: ["n1", "n2"] }))
      .json();
    assert.equal(p.length, 2);
    assert.equal(p[0].Host, "n1");
    assert.equal(p[0].Score, 0);
    assert.ok(p[1].Score >= 1 && p[1].Score <= 10);
    const b = await (await call("bind", {
      PodName: "new-pod",
      PodNamespace: "default",
      PodUID: "pod-uid-new",
      Node: "n2",
    })).json();
    assert.deepEqual(b, { Error: "" });
    assert.equal(loose(fake.object(PODS, "default", "new-pod")).spec?.nodeName, "n2");
    assert.equal(t.app.state.nodes.get("n2")!.sums.reserved.cpu, 1000);
    // A bind that no longer fits is refused (unlike the reference's Reserve).
    seedVm(fake, "late", { cpu: 4, slots: 1 });
    await waitFor(() => t.app.state.podsByName.has("default/late-pod"));
    const refused = await (await call("bind", {
      PodName: "late-pod",
      PodNamespace: "default",
      PodUID: "pod-uid-late",
      Node: "n2",
    })).json();
    assert.match(refused.Error, /not enough resources/);
    assert.equal(loose(fake.object(PODS, "default", "late-pod")).spec?.nodeName, undefined);
  } finally {
    await t.stop();
  }
});

Deno.test("migrations: pressure creates a labelled VirtualMachineMigration; finished ones are deleted", async () => {
  await using fake = new FakeApiServer();
  seedNode(fake, "n1", "4", "16Gi");
  const mig = { "autoscaling.neon.tech/auto-migration-enabled": "true" };
  seedVm(fake, "old", {
    cpu: 1,
    slots: 2,
    node: "n1",
    approved: `{"vCPUs":1,"mem":"2Gi"}`,
    created: "2026-01-01T00:00:00Z",
    labels: mig,
  });
  seedVm(fake, "young", {
    cpu: 3,
    slots: 2,
    node: "n1",
    approved: `{"vCPUs":3,"mem":"2Gi"}`,
    created: "2026-01-02T00:00:00Z",
    labels: mig,
  });
  const t = await startApp(fake);
  try {
    // 4000m reserved > watermark 3600m → migrate the oldest VM.
    await t.app.migrations.tick(true);
    const m = fake.object(VMMS, "default", "schedplugin-old-pod");
    assert.ok(m, "migration created");
    assert.equal(loose(m).metadata.labels!["autoscaling.neon.tech/created-by-scheduler"], "true");
    assert.deepEqual(m.spec, {
      vmName: "old",
      preventMigrationToSameHost: true,
      completionTimeout: 3600,
      incremental: true,
      autoConverge: true,
      maxBandwidth: "1Gi",
      allowPostCopy: false,
    });
    assert.equal(fake.object(VMMS, "default", "schedplugin-young-pod"), undefined);
    // The VM about to move gets migrate: {} and no increase.
    const r = await t.app.mainHandler(
      permitRequest(agentReq("old-pod", 2, "2Gi", { vCPUs: 1, mem: "2Gi" })),
    );
    assert.equal(await r.text(), `{"permit":{"vCPUs":1,"mem":"2Gi"},"migrate":{}}`);
    // Succeeded → deleted.
    await waitFor(() => t.app.state.migrations.size === 1);
    const cur = fake.object(VMMS, "default", "schedplugin-old-pod")!;
    await fake.handle(
      new Request(
        `http://fake${
          VMMS.replace("/virtualmachinemigrations", "")
        }/namespaces/default/virtualmachinemigrations/schedplugin-old-pod/status`,
        {
          method: "PATCH",
          headers: { "content-type": "application/merge-patch+json" },
          body: JSON.stringify({
            status: { phase: "Succeeded" },
            metadata: { resourceVersion: cur.metadata.resourceVersion },
          }),
        },
      ),
    );
    await waitFor(() => [...t.app.state.migrations.values()].some((x) => x.phase === "Succeeded"));
    await t.app.migrations.tick(false);
    assert.equal(fake.object(VMMS, "default", "schedplugin-old-pod"), undefined);
  } finally {
    await t.stop();
  }
});

Deno.test("ops: readyz follows sync, metrics use the reference names", async () => {
  await using fake = new FakeApiServer();
  seedNode(fake, "n1", "4", "16Gi");
  const t = await startApp(fake);
  try {
    const ready = await t.app.opsHandler(new Request("http://x/readyz"));
    assert.equal(ready.status, 200);
    await ready.body?.cancel();
    const m = await (await t.app.opsHandler(new Request("http://x/metrics"))).text();
    assert.match(m, /autoscaling_plugin_node_cpu_resources_current\{node="n1",field="Total"\} 4/);
    assert.match(m, /autoscaling_plugin_node_mem_resources_current\{node="n1",field="Watermark"\}/);
  } finally {
    await t.stop();
  }
});

Deno.test("permit API: concurrent increases on one node never over-commit it", async () => {
  await using fake = new FakeApiServer();
  seedNode(fake, "n1", "4", "64Gi");
  for (let i = 0; i < 6; i++) {
    seedVm(fake, `v${i}`, {
      cpu: 0.5,
      slots: 1,
      node: "n1",
      approved: `{"vCPUs":"500m","mem":"1Gi"}`,
    });
  }
  const t = await startApp(fake);
  try {
    // 3 of 4 CPUs held; six VMs each ask for +1 CPU at once: 1 CPU of room in total.
    const answers = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        t.app.mainHandler(
          permitRequest(agentReq(`v${i}-pod`, "1500m", "1Gi", { vCPUs: "500m", mem: "1Gi" })),
        ).then(async (r) => ({ status: r.status, body: await r.text() }))),
    );
    let grantedMilli = 0;
    for (const a of answers) {
      assert.equal(a.status, 200, a.body);
      const v = JSON.parse(a.body).permit.vCPUs;
      const milli = typeof v === "number" ? v * 1000 : Number(String(v).replace("m", ""));
      grantedMilli += milli - 500;
    }
    assert.equal(grantedMilli, 1000, JSON.stringify(answers));
    let recorded = 0;
    for (let i = 0; i < 6; i++) {
      const raw = loose(fake.object(VMS, "default", `v${i}`)).metadata.annotations![APPROVED]!;
      const v = JSON.parse(raw).vCPUs;
      recorded += typeof v === "number" ? v * 1000 : Number(String(v).replace("m", ""));
    }
    assert.equal(recorded, 4000);
    assert.equal(t.app.state.nodes.get("n1")!.sums.reserved.cpu, 4000);
  } finally {
    await t.stop();
  }
});

Deno.test("leader election: only the lease holder answers permits; the other is not ready", async () => {
  await using fake = new FakeApiServer();
  seedNode(fake, "n1", "4", "16Gi");
  seedVm(fake, "a", { cpu: 1, slots: 1, node: "n1", approved: `{"vCPUs":1,"mem":"1Gi"}` });
  const le = (identity: string) => ({ namespace: "kube-system", name: "sched-test", identity });
  const one = await startApp(fake, {}, le("one"));
  const two = await startApp(fake, {}, le("two"));
  try {
    await waitFor(() => [one, two].some((x) => x.logger.lines.some((l) => l.msg === "Leading")));
    await new Promise((r) => setTimeout(r, 100));
    const leaders = [one, two].filter((x) => x.logger.lines.some((l) => l.msg === "Leading"));
    assert.equal(leaders.length, 1);
    const follower = leaders[0] === one ? two : one;
    const req = () => permitRequest(agentReq("a-pod", 1, "1Gi", { vCPUs: 1, mem: "1Gi" }));
    assert.equal(
      await (await leaders[0]!.app.mainHandler(req())).text(),
      `{"permit":{"vCPUs":1,"mem":"1Gi"}}`,
    );
    const f = await follower.app.mainHandler(req());
    assert.equal(f.status, 503);
    await f.body?.cancel();
    const ready = await follower.app.opsHandler(new Request("http://x/readyz"));
    assert.equal(ready.status, 503);
    await ready.body?.cancel();
  } finally {
    await one.stop();
    await two.stop();
  }
});
