/**
 * autoscaler-agent resource benchmark: the agent's CPU time and resident memory per managed VM
 * with 1, 100 and 1,000 VMs. The agent runs as its own process (so /proc/<pid> gives its RSS and
 * CPU); every VM's metrics exporter and vm-monitor are served by one peer process
 * (bench/agent_peer.ts) over real loopback sockets (pod IPs 127.1.x.y); the apiserver and the
 * scheduler are faked in this process. After all runners are connected to their monitors, CPU is
 * measured over a steady-state window (scrape every 5 s, health check every 5 s, permit request
 * every 15 s per VM). Prints a table. Each size is bounded (the 1,000-VM run to about 60 s).
 * Run: `deno run -A bench/agent_bench.ts [--sizes=1,100,1000] [--window=20] [--deadline=S]`
 * (`--deadline` bounds each size's run; default 45 s, 60 s for 1,000 VMs). Linux only.
 * @module
 */
import { parseArgs } from "node:util";
import { FakeApiServer, fakeKubeconfig } from "../src/lib/k8s/_fake_apiserver.ts";

const CLK_TCK = 100;
const ROOT = new URL("../", import.meta.url).pathname;

function out(line: string): void {
  Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const p = (l.addr as Deno.NetAddr).port;
  l.close();
  return p;
}

async function sampleProc(
  pid: number,
): Promise<{ cpuTicks: number; rssKiB: number; atMs: number }> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return {
    cpuTicks: Number(rest[11]) + Number(rest[12]),
    rssKiB: Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1] ?? NaN),
    atMs: Date.now(),
  };
}

function podIp(i: number): string {
  return `127.1.${Math.floor(i / 250)}.${(i % 250) + 1}`;
}

interface Result {
  vms: number;
  connectS: number;
  rssMiB: number;
  rssStartMiB: number;
  rssPerVmKiB: number;
  cpuPct: number;
  cpuMsPerVmPerS: number;
  permitReqPerS: number;
}

async function runSize(
  n: number,
  windowS: number,
  deadlineS: number,
  v8Flags: string | undefined,
): Promise<Result> {
  const startMs = Date.now();
  const tmp = await Deno.makeTempDir({ prefix: "agent-bench-" });
  const ports = {
    metrics: freePort(),
    monitor: freePort(),
    scheduler: freePort(),
    agentMetrics: freePort(),
    agentVmMetrics: freePort(),
    dump: freePort(),
  };
  await using api = new FakeApiServer();
  api.seed("/api/v1/pods", {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: "autoscale-scheduler-0",
      namespace: "kube-system",
      labels: { name: "autoscale-scheduler" },
      creationTimestamp: "2026-01-01T00:00:00Z",
    },
    spec: { containers: [{ name: "s" }] },
    status: { podIP: "127.0.0.1", conditions: [{ type: "Ready", status: "True" }] },
  });
  for (let i = 0; i < n; i++) {
    api.seed("/apis/vm.neon.tech/v1/virtualmachines", {
      apiVersion: "vm.neon.tech/v1",
      kind: "VirtualMachine",
      metadata: {
        name: `vm${i}`,
        namespace: "bench",
        labels: { "autoscaling.neon.tech/enabled": "true", "neon/endpoint-id": `ep-${i}` },
      },
      spec: {
        schedulerName: "autoscale-scheduler",
        guest: {
          cpus: { min: "250m", max: 2, use: "250m" },
          memorySlotSize: "1Gi",
          memorySlots: { min: 1, max: 8, use: 1 },
          rootDisk: { image: "img" },
        },
      },
      status: { phase: "Running", node: "bench-node", podIP: podIp(i), podName: `vm${i}-pod` },
    });
  }
  let permitRequests = 0;
  const sched = Deno.serve(
    { hostname: "127.0.0.1", port: ports.scheduler, onListen: () => {} },
    async (req) => {
      permitRequests++;
      const body = await req.json();
      return Response.json({ permit: body.resources });
    },
  );
  await Deno.writeTextFile(
    `${tmp}/kubeconfig`,
    fakeKubeconfig(api.url),
  );
  await Deno.writeTextFile(
    `${tmp}/config.json`,
    JSON.stringify({
      monitor: { serverPort: ports.monitor },
      metrics: { system: { port: ports.metrics } },
      scheduler: { requestPort: ports.scheduler },
      dumpState: { port: ports.dump, timeoutSeconds: 5 },
    }),
  );
  const peer = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--no-check",
      "bench/agent_peer.ts",
      `--metrics-port=${ports.metrics}`,
      `--monitor-port=${ports.monitor}`,
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = peer.stdout.pipeThrough(new TextDecoderStream()).getReader();
  await reader.read(); // "ready"
  const agent = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--no-check",
      ...(v8Flags ? [`--v8-flags=${v8Flags}`] : []),
      "src/agent/main.ts",
      `--config=${tmp}/config.json`,
      "--node-name=bench-node",
      "--pod-ip=127.0.0.1",
      `--kubeconfig=${tmp}/kubeconfig`,
      "--listen-host=127.0.0.1",
      `--metrics-port=${ports.agentMetrics}`,
      `--vm-metrics-port=${ports.agentVmMetrics}`,
      "--log-level=error",
    ],
    cwd: ROOT,
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  try {
    // Wait until every runner has a monitor connection.
    let connected = 0;
    const deadline = startMs + deadlineS * 1000;
    while (Date.now() < deadline) {
      try {
        const dump = await (await fetch(`http://127.0.0.1:${ports.dump}/`)).json() as {
          pods: { runner?: { monitor?: { connected?: boolean } } }[];
        };
        connected = dump.pods.filter((p) => p.runner?.monitor?.connected).length;
        if (connected >= n) break;
      } catch {
        // Not listening yet.
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    const connectS = (Date.now() - startMs) / 1000;
    // Let the first scrapes and permit requests (spread over 5 s / 15 s) settle into steady state.
    const remaining = deadlineS - connectS;
    const win = Math.max(5, Math.min(windowS, remaining - 6));
    await new Promise((r) => setTimeout(r, 5000));
    const p0 = permitRequests;
    const s0 = await sampleProc(agent.pid);
    await new Promise((r) => setTimeout(r, win * 1000));
    const s1 = await sampleProc(agent.pid);
    const cpuS = (s1.cpuTicks - s0.cpuTicks) / CLK_TCK;
    const wallS = (s1.atMs - s0.atMs) / 1000;
    if (connected < n) out(`warning: only ${connected}/${n} runners connected to their monitor`);
    return {
      vms: n,
      connectS,
      rssMiB: s1.rssKiB / 1024,
      rssStartMiB: s0.rssKiB / 1024,
      rssPerVmKiB: s1.rssKiB / n,
      cpuPct: (100 * cpuS) / wallS,
      cpuMsPerVmPerS: (1000 * cpuS) / wallS / n,
      permitReqPerS: (permitRequests - p0) / wallS,
    };
  } finally {
    agent.kill("SIGTERM");
    peer.kill("SIGTERM");
    await agent.status;
    await reader.cancel();
    await peer.status;
    await sched.shutdown();
    await Deno.remove(tmp, { recursive: true });
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      sizes: { type: "string" },
      window: { type: "string" },
      deadline: { type: "string" },
      "v8-flags": { type: "string" },
    },
  });
  const sizes = (values.sizes ?? "1,100,1000").split(",").map(Number);
  const windowS = Number(values.window ?? "20");
  const results: Result[] = [];
  for (const n of sizes) {
    out(`running ${n} VM(s)…`);
    const deadlineS = values.deadline ? Number(values.deadline) : n >= 1000 ? 60 : 45;
    results.push(await runSize(n, windowS, deadlineS, values["v8-flags"]));
  }
  out("");
  // Marginal cost per VM: above the smallest run (the process's fixed cost).
  const base = results[0]!;
  out(
    "| VMs | all connected after (s) | agent RSS at window start → end (MiB) | RSS per VM (KiB) | marginal RSS per VM (KiB) | agent CPU (% of a core) | CPU per VM (ms/s) | permit requests/s |",
  );
  out("|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const r of results) {
    const marginal = r.vms > base.vms
      ? (((r.rssMiB - base.rssMiB) * 1024) / (r.vms - base.vms)).toFixed(0)
      : "–";
    const cols = [
      r.vms,
      r.connectS.toFixed(1),
      `${r.rssStartMiB.toFixed(1)} → ${r.rssMiB.toFixed(1)}`,
      r.rssPerVmKiB.toFixed(0),
      marginal,
      r.cpuPct.toFixed(1),
      r.cpuMsPerVmPerS.toFixed(3),
      r.permitReqPerS.toFixed(1),
    ];
    out(`| ${cols.join(" | ")} |`);
  }
}
