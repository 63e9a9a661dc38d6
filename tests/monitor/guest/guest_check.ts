/**
 * Runs inside the throwaway QEMU guest (bundled to /guest_check.js by guest_cgroup_test.ts): starts
 * the bundled monitor on a real cgroup v2 `neon-postgres`, plays the agent over loopback, drives
 * a memory hog inside the cgroup, and prints one `H6-RESULT {json}` line with what it observed.
 * Test support only; exits non-zero when a step fails.
 * @module
 */
import {
  encodeAgentMessage,
  type MonitorMessage,
  parseMonitorMessage,
} from "../../../src/api/monitor_protocol.ts";
import { QueueClient } from "../../../src/monitor/io/_fakes.ts";

const MiB = 1 << 20;
const CG = "/sys/fs/cgroup/neon-postgres";
const out: Record<string, unknown> = {};
const say = (s: string) => Deno.stdout.writeSync(new TextEncoder().encode(s + "\n"));

function readNum(file: string): number | string {
  const t = Deno.readTextFileSync(`${CG}/${file}`).trim();
  return /^\d+$/.test(t) ? Number(t) : t;
}
function anonBytes(): number {
  const stat = Deno.readTextFileSync(`${CG}/memory.stat`);
  const get = (k: string) => Number(new RegExp(`^${k} (\\d+)$`, "m").exec(stat)?.[1] ?? NaN);
  return get("active_anon") + get("inactive_anon");
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitPort(port: number, timeoutMs: number): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (performance.now() < end) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      await sleep(200);
    }
  }
  throw new Error("monitor did not listen");
}

async function expect(agent: QueueClient, timeoutMs = 20_000): Promise<MonitorMessage> {
  const text = await agent.next(timeoutMs);
  const r = parseMonitorMessage(text);
  if (!r.ok) throw new Error(`bad frame from monitor: ${text}`);
  return r.value;
}

async function main(): Promise<void> {
  const memTotalKiB = Number(
    /^MemTotal:\s+(\d+) kB$/m.exec(Deno.readTextFileSync("/proc/meminfo"))?.[1],
  );
  out.memTotalMiB = Math.floor(memTotalKiB / 1024);
  const t0 = performance.now();
  const monitor = new Deno.Command("/bin/sh", {
    args: [
      "-c",
      "exec /bin/deno run -A /monitor.js --addr=127.0.0.1:10301 --cgroup=neon-postgres " +
      "2>/tmp/monitor.log",
    ],
  }).spawn();
  try {
    await waitPort(10301, 180_000);
    out.monitorStartMs = Math.round(performance.now() - t0);
    out.initial = { high: readNum("memory.high"), max: readNum("memory.max") };

    const agent = new QueueClient("ws://127.0.0.1:10301/monitor");
    await agent.opened();
    agent.send('{"min":1,"max":1}');
    out.handshake = await agent.next(20_000);

    const hog = new Deno.Command("/bin/sh", {
      args: ["-c", `echo $$ > ${CG}/cgroup.procs && exec /bin/deno run -A /hog.js`],
      stdin: "piped",
      stdout: "piped",
    }).spawn();
    const hogIn = hog.stdin.getWriter();
    const hogOut = hog.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const hold = async (mib: number) => {
      await hogIn.write(new TextEncoder().encode(`${mib}\n`));
      let line = "";
      while (!line.includes(`held ${mib}`)) {
        const { value, done } = await hogOut.read();
        if (done) throw new Error("hog exited");
        line += value;
      }
    };

    // 1 GiB granted: usable 924 MiB, memory.max 924 MiB, memory.high 824 MiB, threshold 700 MiB.
    agent.send(encodeAgentMessage({
      type: "UpscaleNotification",
      content: { granted: { cpu: 1, mem: 1024 * MiB } },
      id: 2,
    }));
    out.upscale1 = await expect(agent);
    out.afterUpscale1 = { high: readNum("memory.high"), max: readNum("memory.max") };

    await hold(300);
    await sleep(1500);
    out.anonAt300MiB = Math.round(anonBytes() / MiB);
    // 512 MiB: usable 412, high 312, threshold 265 MiB < ~340 + 100 MiB: refused.
    agent.send(encodeAgentMessage({
      type: "DownscaleRequest",
      content: { target: { cpu: 0.25, mem: 512 * MiB } },
      id: 4,
    }));
    out.downscaleRefused = await expect(agent);
    out.afterRefused = { high: readNum("memory.high"), max: readNum("memory.max") };
    // 900 MiB: usable 800, high 700, threshold 595 MiB >= ~440 MiB: approved, limits lowered.
    agent.send(encodeAgentMessage({
      type: "DownscaleRequest",
      content: { target: { cpu: 0.25, mem: 900 * MiB } },
      id: 6,
    }));
    out.downscaleApproved = await expect(agent);
    out.afterApproved = { high: readNum("memory.high"), max: readNum("memory.max") };
    agent.send(encodeAgentMessage({
      type: "UpscaleNotification",
      content: { granted: { cpu: 1, mem: 1024 * MiB } },
      id: 8,
    }));
    out.upscale2 = await expect(agent);

    // Fast allocation to ~760 MiB anon (threshold 700 MiB, memory.high 824 MiB).
    const startAlloc = performance.now();
    await hold(720);
    const held = performance.now();
    const req = await expect(agent, 10_000);
    const got = performance.now();
    out.upscaleRequest = req;
    out.anonAfterAlloc = Math.round(anonBytes() / MiB);
    out.allocMs = Math.round(held - startAlloc);
    out.requestAfterAllocStartMs = Math.round(got - startAlloc);
    out.requestAfterHeldMs = Math.round(got - held);
    out.events = Deno.readTextFileSync(`${CG}/memory.events`).replace(/\n/g, "; ");

    await hogIn.close();
    hog.kill("SIGKILL");
    await hog.status;
    await agent.close();
  } finally {
    monitor.kill("SIGTERM");
    out.monitorExit = (await monitor.status).code;
    const log = Deno.readTextFileSync("/tmp/monitor.log").trim().split("\n");
    out.monitorLogTail = log.slice(-4);
  }
}

try {
  await main();
  say("H6-RESULT " + JSON.stringify(out));
} catch (e) {
  out.error = e instanceof Error ? e.stack ?? e.message : String(e);
  say("H6-RESULT " + JSON.stringify(out));
  Deno.exit(1);
}
