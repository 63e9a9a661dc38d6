/**
 * autoscale-scheduler benchmark: permit requests per second and p50/p99 latency, separately for
 * no-change requests (answered from memory) and for increases (recorded on the VirtualMachine
 * before the answer), with 500 nodes and 15,000 VMs in the accounting; and the extender's filter
 * latency over 500 nodes. Requests go over real HTTP/1.1 on loopback to the scheduler's own
 * handler (`Deno.serve` in this process) from a separate client process
 * (bench/scheduler_load_client.ts: raw TCP, keep-alive, pre-serialised requests), so client and
 * server CPU are measured apart; the client's floor against a trivial `Deno.serve` is printed
 * beside the real rows. Closed-loop rows show the most the pair manages at a concurrency;
 * open-loop rows send at a fixed rate and count latency from when each request was due.
 * The API server is replaced by an in-memory fake: a VM patch costs one JSON-patch application in
 * this process and no network round trip, so the increase figures are an upper bound of what a
 * real apiserver allows. Prints a table with the machine's load before and after (it is shared).
 * Run: `deno task bench:scheduler [--seconds=5] [--concurrency=1,8,32] [--rate=10000]`.
 * @module
 */
import { parseArgs } from "node:util";
import process from "node:process";
import type { ExtenderBindingArgs } from "../src/api/extender.ts";
import { DEFAULT_SCHEDULER_CONFIG } from "../src/api/scheduler_config.ts";
import { systemClock } from "../src/lib/clock.ts";
import { RemoteError } from "../src/lib/errors.ts";
import { KubeClient } from "../src/lib/k8s/client.ts";
import { jsonPatch } from "../src/lib/k8s/_fake_apiserver.ts";
import { createLogger } from "../src/lib/log.ts";
import { SchedulerApp } from "../src/scheduler/io/app.ts";
import type { PatchOp, SchedulerKube } from "../src/scheduler/io/kube.ts";
import type { LoadJob, LoadResult } from "./scheduler_load_client.ts";

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

function nowUtc(): string {
  return new Date().toISOString().slice(11, 19);
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

/** One row of the table. */
interface Row {
  scenario: string;
  concurrency: number;
  /** Open-loop target rate, 0 for closed loop. */
  ratePerSec: number;
  result: LoadResult;
  /** Server process CPU per request (µs); NaN when not measured. */
  serverCpuUs: number;
}

/** Runs one load phase in a separate client process. */
async function drive(job: Omit<LoadJob, "host">): Promise<LoadResult> {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", new URL("./scheduler_load_client.ts", import.meta.url).pathname],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  });
  const child = cmd.spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(JSON.stringify({ ...job, host: "127.0.0.1" })));
  await w.close();
  const out = await child.output();
  if (!out.success) throw new Error(`load client failed (exit ${out.code})`);
  return JSON.parse(new TextDecoder().decode(out.stdout)) as LoadResult;
}

/** Runs a phase and measures this (server) process's CPU time while it runs. */
async function measured(
  scenario: string,
  job: Omit<LoadJob, "host">,
): Promise<Row> {
  const cpu0 = process.cpuUsage();
  const result = await drive(job);
  const cpu = process.cpuUsage(cpu0);
  // The client's start-up (a second or so of compiling) is idle time for the server; only the
  // handler's work shows up here, plus the small cost of spawning.
  const n = result.latenciesMs.length;
  return {
    scenario,
    concurrency: job.concurrency,
    ratePerSec: job.ratePerSec,
    result,
    serverCpuUs: n > 0 ? (cpu.user + cpu.system) / n : NaN,
  };
}

function fmtRow(r: Row): string {
  const n = r.result.latenciesMs.length;
  const cells = [
    r.scenario.padEnd(38),
    String(r.concurrency).padStart(4),
    (r.ratePerSec > 0 ? String(r.ratePerSec) : "max").padStart(6),
    String(n).padStart(7),
    (n / r.result.seconds).toFixed(0).padStart(7),
    percentile(r.result.latenciesMs, 0.5).toFixed(2).padStart(6),
    percentile(r.result.latenciesMs, 0.99).toFixed(2).padStart(6),
    String(r.result.errors).padStart(7),
    (Number.isNaN(r.serverCpuUs) ? "-" : r.serverCpuUs.toFixed(0)).padStart(6),
    (n > 0 ? r.result.cpuUs / n : NaN).toFixed(0).padStart(6),
  ];
  return `| ${cells.join(" | ")} |`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      seconds: { type: "string", default: "5" },
      concurrency: { type: "string", default: "1,8,32" },
      rate: { type: "string", default: "10000" },
      "rate-concurrency": { type: "string", default: "32" },
    },
  });
  const seconds = Number(values.seconds);
  const concurrencies = values.concurrency.split(",").map(Number);
  const rate = Number(values.rate);
  const rateConns = Number(values["rate-concurrency"]);
  const maxC = Math.max(...concurrencies);
  const loadBefore = loadavg();
  const timeBefore = nowUtc();

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

  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    app.mainHandler,
  );
  const port = server.addr.port;
  // Client floor: the same client against a handler that only reads the body and returns a
  // fixed permit, i.e. what HTTP on this machine allows before any scheduler work.
  const fixed = `{"permit":{"vCPUs":1,"mem":"4Gi"}}`;
  const floorServer = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (r) => {
      await r.arrayBuffer();
      return new Response(fixed, { headers: { "content-type": "application/json" } });
    },
  );
  const floorPort = floorServer.addr.port;

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
  const closed = { path: "/", seconds, once: false, ratePerSec: 0 };
  const rows: Row[] = [];
  // Warm-up, not reported: JIT of both servers, and one request per VM so every VM has a
  // decision in memory (the steady state; a VM's first request records its decision).
  await drive({
    ...closed,
    port,
    bodies: noChangeBodies,
    concurrency: maxC,
    seconds: 60,
    once: true,
  });
  await drive({
    ...closed,
    port: floorPort,
    bodies: noChangeBodies,
    concurrency: maxC,
    seconds: 1,
  });
  for (const c of concurrencies) {
    rows.push(
      await measured("client floor (trivial Deno.serve)", {
        ...closed,
        port: floorPort,
        bodies: noChangeBodies,
        concurrency: c,
      }),
    );
  }
  if (rate > 0) {
    rows.push(
      await measured("client floor (trivial Deno.serve)", {
        ...closed,
        port: floorPort,
        bodies: noChangeBodies,
        concurrency: rateConns,
        ratePerSec: rate,
      }),
    );
  }
  await floorServer.shutdown();
  const noChangeRows: Row[] = [];
  for (const c of concurrencies) {
    noChangeRows.push(
      await measured("permit, no change", {
        ...closed,
        port,
        bodies: noChangeBodies,
        concurrency: c,
      }),
    );
  }
  if (rate > 0) {
    noChangeRows.push(
      await measured("permit, no change", {
        ...closed,
        port,
        bodies: noChangeBodies,
        concurrency: rateConns,
        ratePerSec: rate,
      }),
    );
  }
  rows.push(...noChangeRows);
  // Each VM grows by one 250m unit, each once: every request raises what is recorded, so every
  // answer waits for its (fake) VM patch.
  const incBodies = Array.from({ length: VMS }, (_, i) => req(i, 1250, 1000));
  const half = Math.floor(VMS / 2);
  rows.push(
    await measured("permit, increase (VM patched first)", {
      ...closed,
      port,
      bodies: incBodies.slice(0, half),
      concurrency: 1,
      once: true,
    }),
  );
  rows.push(
    await measured("permit, increase (VM patched first)", {
      ...closed,
      port,
      bodies: incBodies.slice(half),
      concurrency: maxC,
      once: true,
    }),
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
  for (const c of [1, 4]) {
    rows.push(
      await measured(`extender filter, ${NODES} nodes`, {
        ...closed,
        path: "/scheduler/filter",
        port,
        bodies: [filterBody],
        concurrency: c,
        seconds: Math.max(1, seconds / 2),
      }),
    );
  }
  await server.shutdown();
  const loadAfter = loadavg();

  out("");
  out(`autoscale-scheduler benchmark — ${NODES} nodes, ${VMS} VMs, ${seconds} s per row`);
  out(`state built from objects in ${buildMs.toFixed(0)} ms; apiserver patch = in-memory fake`);
  out(
    `load average (1/5/15 min) ${timeBefore} UTC: ${loadBefore}; ${nowUtc()} UTC: ${loadAfter} ` +
      `(2 cores, shared by client and server)`,
  );
  out("rate: 'max' = closed loop; a number = open loop at that rate, latency from due time");
  out("cpu µs/req: server = the scheduler process, client = the load process");
  out("");
  out(
    "| scenario                               | conc |   rate |   reqs |   req/s | p50 ms | p99 ms " +
      "| non-200 | srv µs | cli µs |",
  );
  out(
    "|----------------------------------------|-----:|-------:|-------:|--------:|-------:|-------:" +
      "|--------:|-------:|-------:|",
  );
  for (const r of rows) out(fmtRow(r));
  out("");
  out(`VMs whose approved annotation was rewritten by increases: ${recorded} of ${VMS}`);
  const met = noChangeRows.filter((r) =>
    r.result.errors === 0 &&
    r.result.latenciesMs.length / r.result.seconds >= 10_000 &&
    percentile(r.result.latenciesMs, 0.99) < 5
  );
  out(
    `target (no-change ≥ 10,000 req/s with p99 < 5 ms): ${
      met.length > 0
        ? `met (${
          met.map((r) => `c=${r.concurrency} ${r.ratePerSec > 0 ? `@${r.ratePerSec}/s` : "max"}`)
            .join(", ")
        })`
        : "NOT met"
    }`,
  );
}

if (import.meta.main) await main();
