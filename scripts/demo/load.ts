/**
 * The demo's workloads, run inside the load pod with `kubectl exec`: wait for Postgres, pgbench
 * initialisation and a CPU-heavy pgbench run (the memory-heavy queries are memoryPressure in
 * cluster.ts). Also the background sampler that records the VM and guest metrics once per
 * interval. Must not touch other pods.
 * @module
 */
import {
  type DemoCluster,
  getVm,
  kubectl,
  scrapeGuest,
  snapshotOf,
  type VmSnapshot,
} from "./cluster.ts";
import { pgConn } from "./manifests.ts";
import type { Point } from "./timeline.ts";

/** Where the load runs. */
export interface LoadTarget {
  /** Cluster. */
  cluster: DemoCluster;
  /** Namespace of the load pod. */
  namespace: string;
  /** Load pod name. */
  pod: string;
}

/** Runs a shell command in the load pod; resolves with its exit code and output. */
export function execInLoadPod(
  t: LoadTarget,
  script: string,
  timeoutMs: number,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return kubectl(t.cluster, [
    "exec",
    "-n",
    t.namespace,
    t.pod,
    "--",
    "sh",
    "-c",
    script,
  ], { timeoutMs });
}

/** True when Postgres at `ip` answers `SELECT 1` from the load pod. */
export async function postgresReady(t: LoadTarget, ip: string): Promise<boolean> {
  const r = await execInLoadPod(t, `psql "${pgConn(ip)}" -tAc 'SELECT 1'`, 20_000);
  return r.code === 0 && r.stdout.trim() === "1";
}

/** `pgbench -i` at scale `scale`. */
export async function pgbenchInit(t: LoadTarget, ip: string, scale: number): Promise<void> {
  const r = await execInLoadPod(
    t,
    `pgbench -i -q -s ${scale} "${pgConn(ip)}" 2>&1`,
    15 * 60_000,
  );
  if (r.code !== 0) throw new Error(`pgbench -i failed (exit ${r.code}): ${r.stdout.slice(-500)}`);
}

/** Outcome of a pgbench run. */
export interface PgbenchResult {
  /** pgbench exit code (0: every client finished, no connection lost). */
  code: number;
  /** Transactions processed. */
  transactions: number | undefined;
  /** Throughput reported (without connection time). */
  tps: number | undefined;
  /** Aborted/failed transactions reported. */
  failed: number;
  /** Whether pgbench reported a lost connection or aborted client. */
  connectionBroken: boolean;
  /** Last lines of the output. */
  tail: string;
}

/** Parses pgbench's summary output. */
export function parsePgbench(code: number, out: string): PgbenchResult {
  const num = (re: RegExp) => {
    const m = out.match(re);
    return m ? Number(m[1]) : undefined;
  };
  return {
    code,
    transactions: num(/number of transactions actually processed: (\d+)/),
    tps: num(/tps = ([\d.]+) \(without initial connection time\)/),
    failed: num(/number of failed transactions: (\d+)/) ?? 0,
    connectionBroken:
      /client \d+ aborted|connection to server .* lost|server closed the connection|terminating connection/i
        .test(out),
    tail: out.trim().split("\n").slice(-8).join("\n"),
  };
}

/** A select-only pgbench run of `seconds` with `clients` connections (CPU-heavy). */
export async function pgbenchRun(
  t: LoadTarget,
  ip: string,
  opts: { clients: number; seconds: number },
): Promise<PgbenchResult> {
  const r = await execInLoadPod(
    t,
    `pgbench -n -S -c ${opts.clients} -j ${Math.min(2, opts.clients)} -T ${opts.seconds} ` +
      `-P 30 "${pgConn(ip)}" 2>&1`,
    (opts.seconds + 120) * 1000,
  );
  return parsePgbench(r.code, r.stdout + r.stderr);
}

/** Records the VM and its guest's metrics every `intervalMs` until stopped. */
export class Sampler {
  /** Points so far. */
  readonly points: Point[] = [];
  /** The latest VM snapshot. */
  latest: VmSnapshot | undefined;
  /** Current stage name (set by the demo). */
  stage = "start";
  #stop = false;
  #done: Promise<void> | undefined;
  readonly #t0 = performance.now();

  /** Starts sampling VM `ns/name`. */
  constructor(
    private readonly cluster: DemoCluster,
    private readonly ns: string,
    private readonly name: string,
    private readonly intervalMs = 1000,
  ) {}

  /** Seconds since the sampler was created. */
  nowSec(): number {
    return (performance.now() - this.#t0) / 1000;
  }

  /** Starts the loop. */
  start(): void {
    this.#done = this.#loop();
  }

  async #loop(): Promise<void> {
    // The guest's exporter is scraped every 5 s only (like the agent): under TCG each scrape costs
    // the guest noticeable CPU and would show up in the load average the demo is about.
    let tick = 0;
    let m: Awaited<ReturnType<typeof scrapeGuest>>;
    while (!this.#stop) {
      const started = performance.now();
      try {
        const vm = await getVm(this.cluster, this.ns, this.name);
        if (vm) {
          const s = snapshotOf(vm);
          this.latest = s;
          if (tick++ % Math.max(1, Math.round(5000 / this.intervalMs)) === 0) {
            m = s.podIp ? await scrapeGuest(s.podIp, 2000) : undefined;
          }
          this.points.push({
            tSec: this.nowSec(),
            stage: this.stage,
            loadAvg1m: m?.loadAverage1Min,
            memUsedBytes: m?.memoryUsageBytes,
            cpuUseMilli: s.cpuUseMilli,
            memUseBytes: s.memUseBytes,
            cpuStatusMilli: s.cpuStatusMilli,
            memStatusBytes: s.memStatusBytes,
          });
        }
      } catch {
        // A missed sample leaves a gap in the picture; the next one retries.
      }
      const wait = this.intervalMs - (performance.now() - started);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
  }

  /** Stops the loop and waits for it. */
  async stop(): Promise<void> {
    this.#stop = true;
    await this.#done;
  }
}
