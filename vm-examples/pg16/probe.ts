/**
 * Boot-time and idle-load probe of a Postgres guest image (vm-examples/pg16 or the demo's variant):
 * boots it under QEMU/TCG as tests/vm-builder does, prints when the console first speaks, when
 * init starts, when Postgres answers psql on 5432 and when the vm-monitor listens on 10301, then
 * samples the idle guest over its serial shell: /proc/loadavg, the runnable/blocked task counts
 * and which processes used CPU (from /proc/<pid>/stat deltas). A diagnostic tool, not a test: it
 * asserts nothing and must not touch the cluster.
 *
 * Usage: deno run -A vm-examples/pg16/probe.ts [--image ARCHIVE] [--idle-seconds N] [--cpus N]
 * @module
 */
import { parseArgs } from "node:util";
import { bootGuest, extractDisk } from "../../tests/vm-builder/_qemu.ts";

const CACHE = Deno.env.get("NEONVM_CACHE") ?? "/var/cache/neonvm-ts";
const enc = new TextEncoder();

function say(text: string): void {
  Deno.stdout.writeSync(enc.encode(text + "\n"));
}

/** The newest demo guest archive, else the example's. */
async function defaultImage(): Promise<string> {
  let best: { path: string; mtime: number } | undefined;
  for await (const e of Deno.readDir(`${CACHE}/demo`)) {
    if (!/^vm-pg16-demo-.*\.oci\.tar$/.test(e.name)) continue;
    const path = `${CACHE}/demo/${e.name}`;
    const mtime = (await Deno.stat(path)).mtime?.getTime() ?? 0;
    if (!best || mtime > best.mtime) best = { path, mtime };
  }
  return best?.path ?? `${CACHE}/images/vm-pg16.oci.tar`;
}

async function psqlOk(port: number): Promise<boolean> {
  const r = await new Deno.Command("psql", {
    args: ["-X", "-A", "-t", "-h", "127.0.0.1", "-p", String(port), "-U", "demo", "-c", "select 1"],
    env: { PGPASSWORD: "demo", PGCONNECT_TIMEOUT: "3", PGDATABASE: "postgres" },
    stdout: "piped",
    stderr: "null",
  }).output();
  return r.success && new TextDecoder().decode(r.stdout).trim() === "1";
}

async function listening(port: number): Promise<boolean> {
  try {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    // QEMU's user-mode forwarding accepts before the guest does; a refused guest closes at once.
    const buf = new Uint8Array(1);
    await c.write(enc.encode("GET / HTTP/1.0\r\n\r\n"));
    const n = await Promise.race([
      c.read(buf).catch(() => null),
      new Promise<null>((r) => setTimeout(() => r(null), 3000)),
    ]);
    c.close();
    return n !== null;
  } catch {
    return false;
  }
}

/** Guest shell command printing every process's /proc/<pid>/stat line. */
const PS_CPU = "cat /proc/[0-9]*/stat";
/** Guest shell command printing every thread's stat line (for R/D states). */
const PS_THREADS = "cat /proc/[0-9]*/task/*/stat";

interface Proc {
  comm: string;
  state: string;
  ticks: number;
}

/** Parses `/proc/<pid>/stat` lines: pid, comm, state and utime+stime in ticks (USER_HZ 100). */
function parsePs(text: string): Map<string, Proc> {
  const m = new Map<string, Proc>();
  for (const line of text.split("\n")) {
    const r = /^(\d+) \((.*)\) (.*)$/.exec(line.trim());
    if (!r) continue;
    const f = r[3]!.split(" ");
    m.set(r[1]!, { comm: r[2]!, state: f[0]!, ticks: Number(f[11]) + Number(f[12]) });
  }
  return m;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      image: { type: "string" },
      "idle-seconds": { type: "string", default: "180" },
    },
  });
  const image = values.image ?? (await defaultImage());
  const idleSec = Number(values["idle-seconds"]);
  const dir = await Deno.makeTempDir({ prefix: "pg16-probe-", dir: CACHE });
  say(`image ${image}`);
  try {
    await extractDisk(image, `${dir}/disk.qcow2`, dir);
    await run("qemu-img", ["resize", "-q", `${dir}/disk.qcow2`, "2G"]);
    const t0 = performance.now();
    const at = () => ((performance.now() - t0) / 1000).toFixed(1);
    await using guest = await bootGuest({
      disk: `${dir}/disk.qcow2`,
      work: dir,
      runtimeFiles: {
        "env.sh": "export POSTGRES_PASSWORD='demo'\n",
        "mounts.sh": "set -euo pipefail\n",
      },
      guestPorts: [5432, 9100, 10301],
      memMiB: 1024,
    });
    const port = (p: number) => guest.ports.get(p)!;
    const marks: Record<string, string> = {};
    const milestones: [string, (t: string) => boolean][] = [
      ["console", (t) => t.length > 0],
      ["kernel", (t) => t.includes("Linux version")],
      ["init (/proc/version printed)", (t) => (t.match(/Linux version/g) ?? []).length >= 2],
    ];
    let pg = false;
    let mon = false;
    const deadline = performance.now() + 600_000;
    while ((!pg || !mon) && performance.now() < deadline) {
      const text = guest.consoleText();
      for (const [name, test] of milestones) {
        if (!(name in marks) && test(text)) marks[name] = at();
      }
      if (!pg && (await psqlOk(port(5432)))) [pg, marks["postgres answers"]] = [true, at()];
      if (!mon && (await listening(port(10301)))) [mon, marks["monitor listens"]] = [true, at()];
      await new Promise((r) => setTimeout(r, 1000));
    }
    for (const [k, v] of Object.entries(marks)) say(`  ${v.padStart(6)} s  ${k}`);
    if (!pg) say("  postgres never answered");
    say(`idle sampling for ${idleSec} s (every 30 s)`);
    let prev = parsePs(await guest.shell(PS_CPU, 60_000));
    let prevAt = performance.now();
    for (let t = 0; t < idleSec; t += 30) {
      await new Promise((r) => setTimeout(r, 30_000));
      const la = (await guest.shell("cat /proc/loadavg; grep -E '^procs_' /proc/stat", 30_000))
        .split("\n").filter((l) => /^\d|^procs_/.test(l.trim())).map((l) => l.trim()).join(" | ");
      const threads = [...parsePs(await guest.shell(PS_THREADS, 60_000)).entries()]
        .filter(([, p]) => p.state === "R" || p.state === "D")
        .map(([pid, p]) => `${p.comm}[${pid}]${p.state}`);
      const cur = parsePs(await guest.shell(PS_CPU, 60_000));
      const sec = (performance.now() - prevAt) / 1000;
      const users: string[] = [];
      let total = 0;
      for (const [pid, p] of cur) {
        const d = p.ticks - (prev.get(pid)?.ticks ?? 0);
        total += d;
        if (d > 0) users.push(`${p.comm}[${pid}]${p.state} ${(d / sec).toFixed(1)}%`);
      }
      users.sort((a, b) =>
        Number(b.split(" ").at(-1)!.slice(0, -1)) - Number(a.split(" ").at(-1)!.slice(0, -1))
      );
      say(`  +${at()} s loadavg ${la}`);
      say(`      R/D threads now: ${threads.join(", ")}`);
      say(
        `      cpu ${(total / sec).toFixed(0)}% of one vCPU in processes: ${
          users.slice(0, 8).join(", ")
        }`,
      );
      [prev, prevAt] = [cur, performance.now()];
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => undefined);
  }
}

async function run(cmd: string, args: string[]): Promise<void> {
  const r = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
  if (!r.success) throw new Error(`${cmd}: ${new TextDecoder().decode(r.stderr)}`);
}

if (import.meta.main) await main();
