/**
 * Test driver inside the monitor guest (scripts/guest/monitor_guest.ts), bundled to
 * /neonvm/test/driver.js. Two modes:
 *   serve [port]          HTTP on 0.0.0.0:<port> (default 10380) for the host-side test:
 *                         GET /monitor-log (the vm-monitor's JSON-lines log), GET /cgroup (limits
 *                         and usage of neon-postgres), POST /hog?targetMiB=N&fineFromMiB=F (starts the memory hog
 *                         in neon-postgres, answers with its samples once it holds N MiB of anon
 *                         memory), POST /hog/stop, GET /now (the guest's clock, epoch ms).
 *   hog <targetMiB> [fineFromMiB]
 *                         the hog itself (run inside the cgroup): touches 2 MiB pieces until the
 *                         cgroup's active_anon + inactive_anon (what the monitor averages) reaches
 *                         the target, printing `{"t":<epoch ms>,"anon":n}` measured right after a
 *                         piece (every piece from fineFromMiB on, every 16th below), then
 *                         `{"held":true}`; holds until killed.
 * Both use the guest's wall clock, the one the monitor's log timestamps come from. Test support
 * only: no authentication, must not run anywhere but a throwaway test guest.
 * @module
 */

const CGROUP = "/sys/fs/cgroup/neon-postgres";
const MONITOR_LOG = "/tmp/monitor.log";
const MiB = 1 << 20;
const PIECE_BYTES = 2 * MiB;

function anonBytes(): number {
  const stat = Deno.readTextFileSync(`${CGROUP}/memory.stat`);
  const get = (k: string) => Number(new RegExp(`^${k} (\\d+)$`, "m").exec(stat)?.[1] ?? NaN);
  return get("active_anon") + get("inactive_anon");
}

function readCgroup(): Record<string, number | string> {
  const num = (f: string) => {
    const t = Deno.readTextFileSync(`${CGROUP}/${f}`).trim();
    return /^\d+$/.test(t) ? Number(t) : t;
  };
  return {
    high: num("memory.high"),
    max: num("memory.max"),
    current: num("memory.current"),
    anon: anonBytes(),
    memTotalKiB: Number(
      /^MemTotal:\s+(\d+) kB$/m.exec(Deno.readTextFileSync("/proc/meminfo"))?.[1] ?? NaN,
    ),
  };
}

async function hog(targetMiB: number, fineFromMiB: number): Promise<void> {
  const enc = new TextEncoder();
  const held: Uint8Array[] = [];
  const target = targetMiB * MiB;
  const fineFrom = fineFromMiB * MiB;
  let i = 0;
  // Below `fineFrom`, 32 MiB between reads of memory.stat (fast); above, one read per piece.
  for (let anon = anonBytes(); anon < target;) {
    const a = new Uint8Array(PIECE_BYTES);
    a.fill(1 + (i++ % 250));
    held.push(a);
    if (anon < fineFrom && i % 16 !== 0) {
      anon += PIECE_BYTES;
      continue;
    }
    anon = anonBytes();
    Deno.stdout.writeSync(enc.encode(JSON.stringify({ t: Date.now(), anon }) + "\n"));
  }
  Deno.stdout.writeSync(enc.encode(JSON.stringify({ held: true, pieces: held.length }) + "\n"));
  // Hold until killed (stdin stays open while the driver lives).
  for await (const _ of Deno.stdin.readable) { /* ignore */ }
}

let hogProc: Deno.ChildProcess | undefined;

async function startHog(self: string, targetMiB: number, fineFromMiB: number): Promise<unknown> {
  if (hogProc !== undefined) throw new Error("a hog is already running");
  const startedAt = Date.now();
  const p = new Deno.Command("/neonvm/bin/sh", {
    args: [
      "-c",
      `echo $$ > ${CGROUP}/cgroup.procs && exec ${Deno.execPath()} run -A ${self} hog ${targetMiB} ${fineFromMiB}`,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  hogProc = p;
  const samples: { t: number; anon: number }[] = [];
  let buf = "";
  const reader = p.stdout.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`hog exited before holding ${targetMiB} MiB`);
    buf += value;
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = JSON.parse(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
      if (line.held === true) {
        reader.releaseLock();
        return { startedAt, heldAt: Date.now(), samples };
      }
      samples.push(line);
    }
  }
}

async function stopHog(): Promise<void> {
  const p = hogProc;
  hogProc = undefined;
  if (p === undefined) return;
  try {
    p.kill("SIGKILL");
  } catch { /* gone */ }
  await p.status;
}

function serve(port: number, self: string): void {
  Deno.serve({ hostname: "0.0.0.0", port }, async (req) => {
    const url = new URL(req.url);
    try {
      if (req.method === "GET" && url.pathname === "/monitor-log") {
        return new Response(await Deno.readTextFile(MONITOR_LOG).catch(() => ""));
      }
      if (req.method === "GET" && url.pathname === "/cgroup") return Response.json(readCgroup());
      if (req.method === "GET" && url.pathname === "/now") return new Response(String(Date.now()));
      if (req.method === "POST" && url.pathname === "/hog") {
        const mib = Number(url.searchParams.get("targetMiB"));
        const fine = Number(url.searchParams.get("fineFromMiB") ?? 0);
        if (!Number.isInteger(mib) || mib <= 0 || !Number.isInteger(fine) || fine < 0) {
          return new Response("bad targetMiB or fineFromMiB", { status: 400 });
        }
        return Response.json(await startHog(self, mib, fine));
      }
      if (req.method === "POST" && url.pathname === "/hog/stop") {
        await stopHog();
        return new Response("stopped");
      }
      return new Response("not found", { status: 404 });
    } catch (e) {
      return new Response(e instanceof Error ? e.message : String(e), { status: 500 });
    }
  });
}

if (import.meta.main) {
  const [mode, arg, arg2] = Deno.args;
  const self = new URL(import.meta.url).pathname;
  if (mode === "hog") await hog(Number(arg), Number(arg2 ?? 0));
  else if (mode === "serve") serve(Number(arg ?? 10380), self);
  else {
    Deno.stderr.writeSync(new TextEncoder().encode("usage: driver.js serve [port] | hog <MiB>\n"));
    Deno.exit(2);
  }
}
