/**
 * The scheduler against the real local cluster (`deno task cluster:up`): the unmodified upstream
 * kube-scheduler places pods through our extender; a pod that does not fit stays Pending with our
 * reason in its events; killing our scheduler (SIGKILL) in the middle of upscales loses and
 * repeats nothing, and it grants again within 15 s of the restart. Each test uses its own
 * namespace and a scheduler name unique to the run, so other pods of the cluster are untouched.
 * The agent is played by the test (plain HTTP to the permit API); VM runner pods are stand-ins
 * owned by real VirtualMachine objects (no neonvm-controller needed).
 * @module
 */
import assert from "node:assert/strict";
import { encodeMilliCpu, parseMilliCpu } from "../../src/api/quantity.ts";
import { type ClusterEnv, kubectl, requireCluster } from "../harness/cluster.ts";
import {
  applyCrds,
  freePort,
  ok,
  runnerPodManifest,
  startKubeScheduler,
  startScheduler,
  vmManifest,
  waitFor,
} from "./_scheduler_process.ts";

const APPROVED = "internal.autoscaling.neon.tech/resources-approved";

interface K8sList {
  items: {
    metadata: {
      name: string;
      namespace: string;
      annotations?: Record<string, string>;
      ownerReferences?: { kind: string; name: string }[];
    };
    spec: {
      nodeName?: string;
      containers?: { resources?: { requests?: Record<string, string> } }[];
      guest?: { cpus: { use: string | number } };
    };
    status?: { phase?: string };
  }[];
}

/**
 * What the node's committed CPU must be, computed here from the objects (independently of the
 * scheduler): non-VM pods by their requests, VM pods by max(VM spec use, approved annotation).
 */
async function expectedCommittedMilli(env: ClusterEnv, node: string): Promise<number> {
  const pods = JSON.parse(
    await ok(env, ["get", "pods", "-A", "--field-selector", `spec.nodeName=${node}`, "-o", "json"]),
  ) as K8sList;
  const vms = JSON.parse(
    await ok(env, ["get", "virtualmachines.vm.neon.tech", "-A", "-o", "json"]),
  ) as K8sList;
  const vmBy = new Map(vms.items.map((v) => [`${v.metadata.namespace}/${v.metadata.name}`, v]));
  let sum = 0;
  for (const p of pods.items) {
    const phase = p.status?.phase;
    if (phase === "Succeeded" || phase === "Failed") continue;
    const owner = p.metadata.ownerReferences?.find((o) => o.kind === "VirtualMachine");
    if (owner === undefined) {
      for (const c of p.spec.containers ?? []) {
        sum += parseMilliCpu(c.resources?.requests?.cpu ?? 0) ?? 0;
      }
      continue;
    }
    const vm = vmBy.get(`${p.metadata.namespace}/${owner.name}`);
    let cpu = vm?.spec.guest ? parseMilliCpu(vm.spec.guest.cpus.use) ?? 0 : 0;
    const ann = vm?.metadata.annotations?.[APPROVED] ??
      p.metadata.annotations?.[APPROVED];
    if (ann !== undefined) cpu = Math.max(cpu, parseMilliCpu(JSON.parse(ann).vCPUs) ?? 0);
    const res = p.metadata.annotations?.["vm.neon.tech/resources"];
    if (res !== undefined) cpu = Math.max(cpu, parseMilliCpu(JSON.parse(res).cpus.use) ?? 0);
    sum += cpu;
  }
  return sum;
}

async function withSetup(
  fn: (
    env: ClusterEnv,
    ns: string,
    schedulerName: string,
    dir: string,
    port: number,
  ) => Promise<void>,
): Promise<void> {
  const env = await requireCluster();
  await applyCrds(env);
  const id = crypto.randomUUID().slice(0, 8);
  const ns = `nvts-sched-${id}`;
  const schedulerName = `autoscale-scheduler-test-${id}`;
  const dir = await Deno.makeTempDir({ prefix: "nvts-sched-" });
  await ok(env, ["create", "namespace", ns]);
  try {
    await fn(env, ns, schedulerName, dir, freePort());
  } finally {
    await kubectl(env, ["delete", "namespace", ns, "--wait=false"]);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

async function createVmWithPod(
  env: ClusterEnv,
  ns: string,
  schedulerName: string,
  name: string,
  cpu: string,
  slots: number,
  maxSlots = 16,
  slotSize = "1Gi",
  labels: Record<string, string> = {},
  nodeName?: string,
): Promise<void> {
  await ok(
    env,
    ["apply", "-f", "-"],
    JSON.stringify(vmManifest(name, ns, cpu, slots, maxSlots, slotSize, labels)),
  );
  const uid = (await ok(env, [
    "-n",
    ns,
    "get",
    "virtualmachines.vm.neon.tech",
    name,
    "-o",
    "jsonpath={.metadata.uid}",
  ]))
    .trim();
  await ok(
    env,
    ["apply", "-f", "-"],
    JSON.stringify(
      runnerPodManifest(
        { name, uid },
        ns,
        schedulerName,
        cpu,
        slots,
        maxSlots,
        slotSize,
        labels,
        nodeName,
      ),
    ),
  );
}

async function podNode(env: ClusterEnv, ns: string, pod: string): Promise<string | undefined> {
  const r = await kubectl(env, ["-n", ns, "get", "pod", pod, "-o", "jsonpath={.spec.nodeName}"]);
  const n = r.stdout.trim();
  return r.code === 0 && n !== "" ? n : undefined;
}

async function vmApproved(env: ClusterEnv, ns: string, vm: string): Promise<string | undefined> {
  const out = await ok(env, ["-n", ns, "get", "virtualmachines.vm.neon.tech", vm, "-o", "json"]);
  const obj = JSON.parse(out) as { metadata: { annotations?: Record<string, string> } };
  return obj.metadata.annotations?.[APPROVED];
}

function permitBody(ns: string, pod: string, cpu: string, mem: string, last: unknown): string {
  return JSON.stringify({
    protoVersion: 7,
    pod: { namespace: ns, name: pod },
    computeUnit: { vCPUs: "250m", mem: "1Gi" },
    resources: { vCPUs: cpu, mem },
    lastPermit: last,
    metrics: { loadAvg1M: 0.1 },
  });
}

async function post(url: string, body: string): Promise<{ status: number; text: string }> {
  const r = await fetch(url, {
    method: "POST",
    body,
    headers: { "content-type": "application/json" },
  });
  return { status: r.status, text: await r.text() };
}

Deno.test("the upstream kube-scheduler places VM and plain pods through our extender", async () => {
  await withSetup(async (env, ns, schedulerName, dir, port) => {
    await using sched = await startScheduler(env, dir, schedulerName, port, [
      `--migration-namespaces=${ns}`,
    ]);
    await using _ks = await startKubeScheduler(env, dir, schedulerName, sched.url);
    await createVmWithPod(env, ns, schedulerName, "vm-a", "250m", 1);
    const node = await waitFor(
      "vm-a-pod bound",
      60_000,
      () => podNode(env, ns, "vm-a-pod"),
      async () => (await kubectl(env, ["-n", ns, "describe", "pod", "vm-a-pod"])).stdout,
    );
    assert.ok(env.nodes.some((n) => n.name === node));
    // Our bind created the Binding (the log line comes from the extender's bind).
    await waitFor(
      "bind logged",
      10_000,
      () =>
        Promise.resolve(
          sched.log.some((l) => l.includes("Bound pod") && l.includes("vm-a-pod"))
            ? true
            : undefined,
        ),
    );
    // A plain pod (accounted by its requests) goes the same way.
    await ok(
      env,
      ["apply", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "plain", namespace: ns },
        spec: {
          schedulerName,
          terminationGracePeriodSeconds: 1,
          containers: [{
            name: "main",
            image: "localhost/neonvm-ts/runtime:dev",
            imagePullPolicy: "Never",
            command: ["sleep", "3600"],
            resources: { requests: { cpu: "100m", memory: "32Mi" } },
          }],
        },
      }),
    );
    await waitFor("plain pod bound", 60_000, () => podNode(env, ns, "plain"));
    await waitFor("plain bind logged", 10_000, () =>
      Promise.resolve(
        sched.log.some((l) => l.includes("Bound pod") && l.includes(`${ns}/plain`))
          ? true
          : undefined,
      ));
    // The agent's first request is answered and recorded on the VM.
    const r = await post(`${sched.url}/`, permitBody(ns, "vm-a-pod", "250m", "1Gi", null));
    assert.equal(r.status, 200, r.text);
    assert.equal(r.text, `{"permit":{"vCPUs":"250m","mem":"1Gi"}}`);
    assert.equal(await vmApproved(env, ns, "vm-a"), `{"vCPUs":"250m","mem":"1Gi"}`);
  });
});

Deno.test("a pod that does not fit stays Pending with our reason in its events", async () => {
  await withSetup(async (env, ns, schedulerName, dir, port) => {
    await using sched = await startScheduler(env, dir, schedulerName, port, [
      `--migration-namespaces=${ns}`,
    ]);
    await using _ks = await startKubeScheduler(env, dir, schedulerName, sched.url);
    // 512 GiB of VM memory: its container requests are tiny (so upstream NodeResourcesFit passes)
    // but our accounting counts the VM's size.
    await createVmWithPod(env, ns, schedulerName, "vm-huge", "250m", 512, 512);
    const msg = await waitFor(
      "FailedScheduling event with our reason",
      60_000,
      async () => {
        const out = await ok(env, [
          "-n",
          ns,
          "get",
          "events",
          "--field-selector",
          "involvedObject.name=vm-huge-pod,reason=FailedScheduling",
          "-o",
          "jsonpath={.items[*].message}",
        ]);
        return out.includes("autoscale-scheduler: not enough resources") ? out : undefined;
      },
      async () => (await kubectl(env, ["-n", ns, "describe", "pod", "vm-huge-pod"])).stdout,
    );
    assert.match(msg, /memory: pod needs 524288Mi/);
    assert.equal(await podNode(env, ns, "vm-huge-pod"), undefined);
    const desc = await ok(env, ["-n", ns, "describe", "pod", "vm-huge-pod"]);
    assert.match(desc, /autoscale-scheduler: not enough resources/);
  });
});

Deno.test("SIGKILL mid-upscale loses and repeats nothing; grants again within 15 s of restart", async () => {
  await withSetup(async (env, ns, schedulerName, dir, port) => {
    let sched = await startScheduler(env, dir, schedulerName, port, [
      `--migration-namespaces=${ns}`,
    ]);
    const ks = await startKubeScheduler(env, dir, schedulerName, sched.url);
    try {
      await createVmWithPod(env, ns, schedulerName, "vm-k", "250m", 1);
      await waitFor("vm-k-pod bound", 60_000, () => podNode(env, ns, "vm-k-pod"));
      const url = () => `${sched.url}/`;
      let last: { vCPUs: string | number; mem: string } | null = null;
      const first = await post(url(), permitBody(ns, "vm-k-pod", "250m", "1Gi", last));
      assert.equal(first.status, 200, first.text);
      last = JSON.parse(first.text).permit;
      let cpuMilli = 250;
      for (let round = 0; round < 3; round++) {
        const want = `${cpuMilli + 250}m`;
        const body = permitBody(ns, "vm-k-pod", want, "1Gi", last);
        // Fire the increase and kill the scheduler while it may be mid-patch.
        const inflight = post(url(), body).catch(() => undefined);
        await new Promise((r) => setTimeout(r, round * 15));
        await sched.kill9();
        const answered = await inflight;
        const recorded = await vmApproved(env, ns, "vm-k");
        if (answered?.status === 200) {
          // Loses nothing: a permit the agent received is on the VM object.
          assert.equal(recorded, JSON.stringify(JSON.parse(answered.text).permit));
        }
        // Restart and measure how long until the same increase is granted again.
        const restartAt = Date.now();
        sched = await startScheduler(env, dir, schedulerName, port, [
          `--migration-namespaces=${ns}`,
        ]);
        const granted = await waitFor("grant after restart", 30_000, async () => {
          const r = await post(url(), body).catch(() => undefined);
          return r?.status === 200 ? r : undefined;
        });
        const elapsedMs = Date.now() - restartAt;
        assert.ok(elapsedMs <= 15_000, `granted again only after ${elapsedMs} ms`);
        Deno.stderr.writeSync(
          new TextEncoder().encode(
            `round ${round}: answered before kill: ${
              answered?.status ?? "no"
            }, recorded: ${recorded}, ` +
              `granted again ${elapsedMs} ms after restart (ready after ${sched.readyAfterMs} ms)\n`,
          ),
        );
        const permit = JSON.parse(granted.text).permit;
        assert.deepEqual(permit, { vCPUs: encodeMilliCpu(cpuMilli + 250), mem: "1Gi" });
        assert.equal(await vmApproved(env, ns, "vm-k"), JSON.stringify(permit));
        // Repeats nothing: the node's committed CPU equals what the objects say, this VM once.
        const node = (await podNode(env, ns, "vm-k-pod"))!;
        await waitFor("committed CPU matches the objects", 10_000, async () => {
          const metrics = await (await fetch(`${sched.opsUrl}/metrics`)).text();
          const committed = Number(
            new RegExp(
              `autoscaling_plugin_node_cpu_resources_current\\{node="${node}",field="Committed"\\} ([0-9.e+-]+)`,
            ).exec(metrics)?.[1],
          );
          const expected = await expectedCommittedMilli(env, node);
          return Math.round(committed * 1000) === expected ? true : undefined;
        });
        last = permit;
        cpuMilli += 250;
      }
      // The VM's approval is exactly the last grant: nothing was applied twice.
      assert.equal(
        await vmApproved(env, ns, "vm-k"),
        JSON.stringify({ vCPUs: encodeMilliCpu(cpuMilli), mem: "1Gi" }),
      );
    } finally {
      await ks[Symbol.asyncDispose]();
      await sched[Symbol.asyncDispose]();
    }
  });
});

function metricValue(metrics: string, name: string, node: string, field: string): number {
  const re = new RegExp(`${name}\\{node="${node}",field="${field}"\\} ([0-9.e+-]+)`);
  return Number(re.exec(metrics)?.[1]);
}

Deno.test("memory above the watermark starts a labelled migration of the oldest VM; a finished one is deleted", async () => {
  await withSetup(async (env, ns, schedulerName, dir, port) => {
    await using sched = await startScheduler(env, dir, schedulerName, port, [
      `--migration-namespaces=${ns}`,
    ]);
    await using _ks = await startKubeScheduler(env, dir, schedulerName, sched.url);
    const node = env.nodes[0]!.name;
    const metrics = await (await fetch(`${sched.opsUrl}/metrics`)).text();
    const mem = "autoscaling_plugin_node_mem_resources_current";
    const total = metricValue(metrics, mem, node, "Total");
    const reserved = metricValue(metrics, mem, node, "Reserved");
    const watermark = metricValue(metrics, mem, node, "Watermark");
    const slot = 256 * 1024 * 1024;
    // Fill to just below the watermark with VMs that may not move, then add a movable one
    // (older creation time) that crosses it; everything still fits the node.
    const gapSlots = Math.floor((watermark - reserved) / slot);
    assert.ok(reserved + (gapSlots + 1) * slot <= total, "node too full for this test");
    const migratable = { "autoscaling.neon.tech/auto-migration-enabled": "true" };
    await createVmWithPod(
      env,
      ns,
      schedulerName,
      "mover",
      "250m",
      1,
      512,
      "256Mi",
      migratable,
      node,
    );
    await waitFor("mover bound", 60_000, () => podNode(env, ns, "mover-pod"));
    let left = gapSlots;
    for (let i = 0; left > 0; i++) {
      const n = Math.min(500, left);
      await createVmWithPod(
        env,
        ns,
        schedulerName,
        `filler-${i}`,
        "250m",
        n,
        512,
        "256Mi",
        {},
        node,
      );
      await waitFor(`filler-${i} bound`, 60_000, () => podNode(env, ns, `filler-${i}-pod`));
      left -= n;
    }
    const migName = "schedplugin-mover-pod";
    const vmm = await waitFor(
      "migration created",
      30_000,
      async () => {
        const r = await kubectl(env, [
          "-n",
          ns,
          "get",
          "virtualmachinemigrations.vm.neon.tech",
          migName,
          "-o",
          "json",
        ]);
        return r.code === 0 ? JSON.parse(r.stdout) : undefined;
      },
      () => Promise.resolve(sched.log.slice(-10).join("\n")),
    );
    assert.equal(vmm.metadata.labels["autoscaling.neon.tech/created-by-scheduler"], "true");
    assert.equal(vmm.spec.vmName, "mover");
    assert.equal(vmm.spec.preventMigrationToSameHost, true);
    // Only the movable VM is chosen.
    const all = await ok(env, [
      "-n",
      ns,
      "get",
      "virtualmachinemigrations.vm.neon.tech",
      "-o",
      "name",
    ]);
    assert.equal(all.trim().split("\n").length, 1, all);
    // The agent of the VM about to move is told so.
    const r = await post(
      `${sched.url}/`,
      permitBody(ns, "mover-pod", "500m", "256Mi", { vCPUs: "250m", mem: "256Mi" }),
    );
    assert.equal(r.status, 200, r.text);
    assert.equal(r.text, `{"permit":{"vCPUs":"250m","mem":"256Mi"},"migrate":{}}`);
    // When the migration finishes, the scheduler deletes it.
    await kubectl(env, [
      "-n",
      ns,
      "patch",
      "virtualmachinemigrations.vm.neon.tech",
      migName,
      "--subresource=status",
      "--type=merge",
      "-p",
      JSON.stringify({ status: { phase: "Succeeded" } }),
    ]);
    await waitFor("finished migration deleted", 30_000, async () => {
      const g = await kubectl(env, [
        "-n",
        ns,
        "get",
        "virtualmachinemigrations.vm.neon.tech",
        migName,
      ]);
      return g.code !== 0 && /NotFound/.test(g.stderr) ? true : undefined;
    });
  });
});
