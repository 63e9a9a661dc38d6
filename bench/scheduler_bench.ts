/**
 * autoscale-scheduler benchmark: permit requests per second and p50/p99 latency, separately for
 * no-change requests (answered from memory) and for increases (recorded on the VirtualMachine
 * before the answer), with 500 nodes and 15,000 VMs in the accounting; and the extender's filter
 * latency over 500 nodes. Requests go over real HTTP on loopback to the scheduler's own handler
 * (`Deno.serve` in this thread; `fetch` with keep-alive from a Worker thread, see
 * bench/scheduler_load_worker.ts). The API server is replaced by an in-memory fake: a VM
 * patch costs one JSON-patch application in this process and no network round trip, so the
 * increase figures are an upper bound of what a real apiserver allows. Prints a table, plus the
 * machine's load average before and after (the machine is shared).
 * Run: `deno run -A bench/scheduler_bench.ts [--seconds=5] [--concurrency=32]`.
 * @module
 */
import { parseArgs } from "node:util";
import type { ExtenderBindingArgs } from "../src/api/extender.ts";
import { DEFAULT_SCHEDULER_CONFIG } from "../src/api/scheduler_config.ts";
import { systemClock } from "../src/lib/clock.ts";
import { RemoteError } from "../src/lib/errors.ts";
import { KubeClient } from "../src/lib/k8s/client.ts";
import { jsonPatch } from "../src/lib/k8s/_fake_apiserver.ts";
import { createLogger } from "../src/lib/log.ts";
import { SchedulerApp } from "../src/scheduler/io/app.ts";
import type { PatchOp, SchedulerKube } from "../src/scheduler/io/kube.ts";

const NODES = 500;
const VMS = 15_000;

function out(line: string): void {
  Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
}

function loadavg(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  } catch {
    return "n/a";
  }
}

/** In-memory stand-in for the API server's VM patch (the only call on the permit path). */
function fakeKube(vms: Map<string, Record<string, unknown>>): SchedulerKube {
  let rv = 1_000_000;
  return {
    patchVm: (namespace: string, name: string, ops: readonly PatchOp[]) => {
      const k = `${namespace}/${name}`;
      const cur = vms.get(k);
      if (cur === undefined) return Promise.reject(new RemoteError("not found", { status: 404 }));
      let next: Record<string, unknown>;
      try {
        next = jsonPatch(cur, ops) as Record<string, unknown>;
      } catch (cause) {
        return Promise.reject(new RemoteError("test failed", { status: 422, cause }));
      }
      (next.metadata as Record<string, unknown>).resourceVersion = String(++rv);
      vms.set(k, next);
      return Promise.resolve(structuredClone(next));
    },
    getVm: (namespace: string, name: string) => Promise.resolve(vms.get(`${namespace}/${name}`)),
    getPod: () => Promise.reject(new RemoteError("not used", { status: 404 })),
    bindPod: (_a: ExtenderBindingArgs) => Promise.resolve(),
    createMigration: () => Promise.resolve(),
    deleteMigration: () => Promise.resolve(),
  };
}

function vmObject(i: number): Record<string, unknown> {
  return {
    apiVersion: "vm.neon.tech/v1",
    kind: "VirtualMachine",
    metadata: {
      name: `vm-${i}`,
      namespace: "bench",
      uid: `vm-uid-${i}`,
      resourceVersion: "1",
      annotations: {
        "internal.autoscaling.neon.tech/resources-approved": `{"vCPUs":1,"mem":"4Gi"}`,
        "internal.autoscaling.neon.tech/resources-requested": `{"vCPUs":1,"mem":"4Gi"}`,
        "autoscaling.neon.tech/scaling-unit": `{"vCPUs":"250m","mem":"1Gi"}`,
      },
    },
    spec: {
      guest: {
        cpus: { min: 0.25, max: 8, use: 1 },
        memorySlots: { min: 1, max: 32, use: 4 },
        memorySlotSize: "1Gi",
      },
    },
  };
}

function podObject(i: number, node: string): Record<string, unknown> {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: `vm-${i}-pod`,
      namespace: "bench",
      uid: `pod-uid-${i}`,
      creationTimestamp: "2026-01-01T00:00:00Z",
      labels: { "autoscaling.neon.tech/enabled": "true" },
      annotations: {
        "vm.neon.tech/resources": JSON.stringify({
          cpus: { min: 0.25, max: 8, use: 1 },
          memorySlots: { min: 1, max: 32, use: 4 },
          memorySlotSize: "1Gi",
        }),
      },
      ownerReferences: [{
        apiVersion: "vm.neon.tech/v1",
        kind: "VirtualMachine",
        name: `vm-${i}`,
        uid: `vm-uid-${i}`,
        controller: true,
      }],
    },
    spec: { nodeName: node, schedulerName: "autoscale-scheduler" },
    status: { phase: "Running" },
  };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

interface Result {
  name: string;
  count: number;
  seconds: number;
  latenciesMs: number[];
  errors: number;
}

/** Runs one load phase in the worker thread. */
function drive(
  name: string,
  url: string,
  concurrency: number,
  seconds: number,
  bodies: string[],
  once = false,
): Promise<Result> {
  const w = new Worker(new URL("./scheduler_load_worker.ts", import.meta.url), { type: "module" });
  return new Promise((resolve, reject) => {
    w.onmessage = (e: MessageEvent<{ latencies: number[]; seconds: number; errors: number }>) => {
      w.terminate();
      resolve({
        name,
        count: e.data.latencies.length,
        seconds: e.data.seconds,
        latenciesMs: e.data.latencies,
        errors: e.data.errors,
      });
    };
    w.onerror = (e) => {
      w.terminate();
      reject(new Error(`load worker failed: ${e.message}`));
    };
    w.postMessage({ url, concurrency, seconds, bodies, once });
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      seconds: { type: "string", default: "5" },
      concurrency: { type: "string", default: "32" },
    },
  });
  const seconds = Number(values.seconds);
  const concurrency = Number(values.concurrency);
  const loadBefore = loadavg();

  const vmStore = new Map<string, Record<string, unknown>>();
  const app = new SchedulerApp({
    config: DEFAULT_SCHEDULER_CONFIG,
    client: new KubeClient({ server: "http://unused.invalid" }),
    kube: fakeKube(vmStore),
    logger: createLogger("bench", { level: "error" }),
    clock: systemClock,
    random: Math.random,
  });
  const t0 = performance.now();
  for (let n = 0; n < NODES; n++) {
    app.sync.node({
      apiVersion: "v1",
      kind: "Node",
      metadata: { name: `node-${n}` },
      status: { allocatable: { cpu: "64", memory: "256Gi" } },
    });
  }
  for (let i = 0; i < VMS; i++) {
    const vm = vmObject(i);
    vmStore.set(`bench/vm-${i}`, vm);
    app.sync.vm(structuredClone(vm));
    app.sync.pod(podObject(i, `node-${i % NODES}`));
  }
  app.state.synced = true;
  const buildMs = performance.now() - t0;

  // Time spent inside the scheduler's handler (server side, excluding HTTP parsing and the
  // client), to separate our cost from the shared machine's.
  let handlerMs = 0;
  let handled = 0;
  const timed = async (r: Request): Promise<Response> => {
    const t = performance.now();
    const res = await app.mainHandler(r);
    handlerMs += performance.now() - t;
    handled++;
    return res;
  };
  const phase = async (f: () => Promise<Result>): Promise<Result & { handlerUs: number }> => {
    handlerMs = 0;
    handled = 0;
    const r = await f();
    return { ...r, handlerUs: (handlerMs * 1000) / Math.max(1, handled) };
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, timed);
  const base = `http://127.0.0.1:${server.addr.port}`;

  const req = (i: number, wantMilli: number, lastMilli: number) =>
    JSON.stringify({
      protoVersion: 7,
      pod: { namespace: "bench", name: `vm-${i}-pod` },
      computeUnit: { vCPUs: "250m", mem: "1Gi" },
      resources: { vCPUs: `${wantMilli}m`, mem: "4Gi" },
      lastPermit: { vCPUs: `${lastMilli}m`, mem: "4Gi" },
      metrics: { loadAvg1M: 0.3 },
    });
  // No-change requests for every VM, in a scattered order.
  const noChangeBodies = Array.from({ length: VMS }, (_, k) => req((k * 7919) % VMS, 1000, 1000));
  await drive("warm-up", `${base}/`, concurrency, 1, noChangeBodies);
  const noChange = await phase(() =>
    drive(`permit, no change, c=${concurrency}`, `${base}/`, concurrency, seconds, noChangeBodies)
  );
  const noChangeLow = await phase(() =>
    drive("permit, no change, c=4", `${base}/`, 4, seconds, noChangeBodies)
  );
  // Each VM grows by one 250m unit, each once: every request raises what is recorded.
  const incBodies = Array.from({ length: VMS }, (_, i) => req(i, 1250, 1000));
  const increases = await phase(() =>
    drive(`permit, increase, c=${concurrency}`, `${base}/`, concurrency, seconds, incBodies, true)
  );
  const recorded =
    [...vmStore.values()].filter((v) =>
      (v.metadata as { annotations: Record<string, string> }).annotations[
        "internal.autoscaling.neon.tech/resources-approved"
      ] !== `{"vCPUs":1,"mem":"4Gi"}`
    ).length;

  // Extender filter over all 500 nodes for a new 1 CPU / 4 GiB pod.
  const filterBody = JSON.stringify({
    Pod: podObject(VMS + 1, ""),
    Nodes: null,
    NodeNames: Array.from({ length: NODES }, (_, n) => `node-${n}`),
  });
  const filter = await phase(() =>
    drive("extender filter, 500 nodes, c=4", `${base}/scheduler/filter`, 4, seconds / 2, [
      filterBody,
    ])
  );

  await server.shutdown();

  // Floor: the same HTTP path with a handler that only returns a fixed permit, to show what the
  // shared machine allows before any scheduler work.
  const fixed = `{"permit":{"vCPUs":1,"mem":"4Gi"}}`;
  const floorServer = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (r) => {
      await r.arrayBuffer();
      return new Response(fixed, { headers: { "content-type": "application/json" } });
    },
  );
  const floor = {
    ...(await drive(
      `HTTP floor (fixed answer), c=${concurrency}`,
      `http://127.0.0.1:${floorServer.addr.port}/`,
      concurrency,
      seconds,
      noChangeBodies,
    )),
    handlerUs: 0,
  };
  await floorServer.shutdown();
  const loadAfter = loadavg();

  out("");
  out(`autoscale-scheduler benchmark — ${NODES} nodes, ${VMS} VMs, concurrency ${concurrency}`);
  out(`state built from objects in ${buildMs.toFixed(0)} ms; apiserver patch = in-memory fake`);
  out(`load average before: ${loadBefore}; after: ${loadAfter} (2 shared cores)`);
  out("");
  out(
    "| workload                          | requests | req/s   | p50 ms | p99 ms | non-200 | handler µs/req |",
  );
  out(
    "|-----------------------------------|---------:|--------:|-------:|-------:|--------:|---------------:|",
  );
  for (const r of [floor, noChange, noChangeLow, increases, filter]) {
    out(
      `| ${r.name.padEnd(33)} | ${String(r.count).padStart(8)} | ${
        (r.count / r.seconds).toFixed(0).padStart(7)
      } | ${percentile(r.latenciesMs, 0.5).toFixed(2).padStart(6)} | ${
        percentile(r.latenciesMs, 0.99).toFixed(2).padStart(6)
      } | ${String(r.errors).padStart(7)} | ${
        (r === floor ? "-" : r.handlerUs.toFixed(0)).padStart(14)
      } |`,
    );
  }
  out("");
  out(`VMs whose approved annotation was rewritten by increases: ${recorded}`);
  const okNoChange = noChange.count / noChange.seconds >= 10_000 &&
    percentile(noChange.latenciesMs, 0.99) < 5;
  out(`target (no-change ≥ 10,000 req/s and p99 < 5 ms): ${okNoChange ? "met" : "NOT met"}`);
}

if (import.meta.main) await main();
