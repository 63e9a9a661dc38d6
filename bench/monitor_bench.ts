/**
 * vm-monitor resource benchmark: starts the monitor as a process (watching a fake cgroup v2 tree,
 * so the 100 ms sampler runs as in a guest), then measures its resident memory (VmRSS) and CPU
 * time per wall second from /proc/<pid> while idle with an agent connected, and under a 10 Hz
 * load of agent requests (health checks plus a downscale and an upscale every second), with the
 * round-trip latency of those requests. Prints a table.
 * Run: `deno run -A bench/monitor_bench.ts [--seconds=8]`. Linux only.
 * @module
 */
import { parseArgs } from "node:util";
import { type AgentMessage, encodeAgentMessage } from "../src/api/monitor_protocol.ts";
import { GiB, MiB } from "../src/api/quantity.ts";
import { fakeCgroupTree } from "../src/monitor/io/_fakes.ts";
import { connectAgent, startMonitor } from "../tests/monitor/_monitor_process.ts";

const CLK_TCK = 100; // USER_HZ on Linux

interface ProcSample {
  cpuTicks: number;
  rssKiB: number;
  atMs: number;
}

async function sampleProc(pid: number): Promise<ProcSample> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  // Fields after the ")" of the command name; utime and stime are fields 14 and 15.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const cpuTicks = Number(rest[11]) + Number(rest[12]);
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const rssKiB = Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1] ?? NaN);
  return { cpuTicks, rssKiB, atMs: performance.now() };
}

interface PhaseResult {
  phase: string;
  rssStartMiB: number;
  rssEndMiB: number;
  cpuMsPerS: number;
  requests: number;
  p50Ms: number | undefined;
  p99Ms: number | undefined;
}

function percentile(sorted: number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length - 1) * p))];
}

async function main(): Promise<void> {
  const { values } = parseArgs({ args: Deno.args, options: { seconds: { type: "string" } } });
  const seconds = Number(values.seconds ?? 8);
  const root = await fakeCgroupTree("neon-postgres", 300 * MiB);
  await Deno.writeTextFile(`${root}/meminfo`, `MemTotal:       ${(4 * GiB) / 1024} kB\n`);
  try {
    await using mon = await startMonitor([
      "--cgroup=neon-postgres",
      `--cgroup-root=${root}`,
      `--meminfo=${root}/meminfo`,
      "--log-level=warn",
    ]);
    const pid = mon.child.pid;
    const agent = await connectAgent(mon.url);
    // Warm up: let the sampler fill its window and the JIT settle.
    await new Promise((r) => setTimeout(r, 2_000));

    const results: PhaseResult[] = [];

    // Idle: connected, no requests (the sampler still runs at 10 Hz).
    let a = await sampleProc(pid);
    await new Promise((r) => setTimeout(r, seconds * 1_000));
    let b = await sampleProc(pid);
    results.push({
      phase: "idle (agent connected, sampler 10 Hz)",
      rssStartMiB: a.rssKiB / 1024,
      rssEndMiB: b.rssKiB / 1024,
      cpuMsPerS: ((b.cpuTicks - a.cpuTicks) * (1000 / CLK_TCK)) / ((b.atMs - a.atMs) / 1000),
      requests: 0,
      p50Ms: undefined,
      p99Ms: undefined,
    });

    // 10 Hz load: every 100 ms one request; each second 8 health checks, 1 downscale, 1 upscale.
    let id = 0;
    const latencies: number[] = [];
    a = await sampleProc(pid);
    const endAt = performance.now() + seconds * 1_000;
    let tick = 0;
    while (performance.now() < endAt) {
      const started = performance.now();
      id += 2;
      let msg: AgentMessage;
      if (tick % 10 === 4) {
        msg = { type: "DownscaleRequest", content: { target: { cpu: 0.5, mem: 2 * GiB } }, id };
      } else if (tick % 10 === 9) {
        msg = { type: "UpscaleNotification", content: { granted: { cpu: 1, mem: 4 * GiB } }, id };
      } else {
        msg = { type: "HealthCheck", content: {}, id };
      }
      agent.send(encodeAgentMessage(msg));
      const reply = await agent.next(5_000);
      latencies.push(performance.now() - started);
      if (!reply.includes(`"id":${id}}`)) throw new Error(`unexpected reply ${reply}`);
      tick++;
      const wait = started + 100 - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    b = await sampleProc(pid);
    latencies.sort((x, y) => x - y);
    results.push({
      phase: "10 Hz requests (8 health, 1 down, 1 up /s)",
      rssStartMiB: a.rssKiB / 1024,
      rssEndMiB: b.rssKiB / 1024,
      cpuMsPerS: ((b.cpuTicks - a.cpuTicks) * (1000 / CLK_TCK)) / ((b.atMs - a.atMs) / 1000),
      requests: latencies.length,
      p50Ms: percentile(latencies, 0.5),
      p99Ms: percentile(latencies, 0.99),
    });
    await agent.close();
    printTable(results, seconds);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

function printTable(rows: PhaseResult[], seconds: number): void {
  const f = (x: number | undefined, d = 1) => (x === undefined ? "-" : x.toFixed(d));
  const lines = [
    `vm-monitor resource use (${seconds} s per phase, CPU from /proc utime+stime, 10 ms ticks)`,
    "| phase | RSS start MiB | RSS end MiB | CPU ms/s | requests | RTT p50 ms | RTT p99 ms |",
    "|---|---|---|---|---|---|---|",
    ...rows.map((r) =>
      `| ${r.phase} | ${f(r.rssStartMiB)} | ${f(r.rssEndMiB)} | ${f(r.cpuMsPerS)} | ` +
      `${r.requests} | ${f(r.p50Ms, 2)} | ${f(r.p99Ms, 2)} |`
    ),
  ];
  Deno.stdout.writeSync(new TextEncoder().encode(lines.join("\n") + "\n"));
}

if (import.meta.main) await main();
