/**
 * Reaction-time benchmark on the local cluster with the deployed stack (`deno task
 * bench:reaction`; needs `deno task cluster:up`, deploys the stack like `deno task demo`). Boots one
 * autoscaling Postgres VM once, then alternates CPU load steps (pgbench -S) and memory-pressure
 * steps (queries holding ~0.7 GiB each) and times, per step, from the start of the load (t0, when
 * `kubectl exec` of the load is spawned) to:
 * - signal: the first of our own scrapes of the guest's exporter on which the agent's goal formula
 *   (§3.3, the deployed config plus the VM's overrides) asks for more of that resource;
 * - request / approved: the scheduler recorded a larger request / approval on the VM
 *   (resources-requested / resources-approved annotations);
 * - patch: the agent's patch of `spec` (first increase), as a watch on the VM delivered it;
 * - status: `status.cpus` / `status.memorySize` (what the runner reports) increased;
 * - guest: the guest's own exporter shows more CPUs online / a larger MemTotal (for CPU only when
 *   the patch crossed a whole vCPU: fractions are a cgroup quota outside the guest).
 * For memory steps it also reads the agent's log for the vm-monitor's upscale request (fast path).
 * Before a CPU step the VM must be steady below its CPU maximum and the guest's 1-minute load back
 * near its idle level; before a memory step, steady at its memory minimum (each wait is bounded;
 * the per-step table shows the level and load at t0). Prints a per-step table, p50/p95 per kind
 * and where the time goes; writes the raw observations as JSON. Must not touch other namespaces'
 * objects; deletes its VM at the end (unless --keep-vm).
 *
 * Usage: deno task bench:reaction [--steps 10] [--kinds cpu,memory] [--vm NAME] [--reuse-vm]
 *        [--keep-vm] [--clients 6] [--cpu-seconds 40] [--mem-over-mib 300] [--hold-seconds 25]
 *        [--settle-timeout-seconds 150] [--max-minutes 40] [--kernel runtime|image]
 *        [--no-tcg-tuning] [--out DIR]
 *        deno run -A bench/reaction_bench.ts --from-json A/reaction.json[,B/reaction.json]
 * @module
 */
import { parseArgs } from "node:util";
import { z } from "zod";
import { computeGoalCu } from "../src/agent/core/goal_cu.ts";
import { extractSystemMetrics } from "../src/agent/core/metrics.ts";
import { parsePromText } from "../src/agent/core/prom_text.ts";
import { parseAgentConfig, type ScalingConfig, withOverrides } from "../src/api/agent_config.ts";
import { formatBinarySi, formatMilliCpu, GiB, type Resources } from "../src/api/quantity.ts";
import { KubeClient } from "../src/lib/k8s/client.ts";
import { loadClusterAccess } from "../src/lib/k8s/kubeconfig.ts";
import { createLogger, type Logger } from "../src/lib/log.ts";
import { DEFAULT_CACHE_DIR } from "../scripts/cluster/layout.ts";
import {
  agentPodsOn,
  type DemoCluster,
  endMemoryPressure,
  kubectl,
  loadCluster,
  memoryPressure,
  VmWatch,
  waitUntil,
} from "../scripts/demo/cluster.ts";
import { pgbenchInit, pgbenchRun } from "../scripts/demo/load.ts";
import { DEMO_NAMESPACE, TCG_SCALING_CONFIG } from "../scripts/demo/manifests.ts";
import { textTable } from "../scripts/demo/render.ts";
import { deleteVm, deployStack, ensureImages, startVm } from "../scripts/demo/stack.ts";
import {
  between,
  type GuestObservation,
  pressurePlan,
  type StepKind,
  type StepTimes,
  stepTimes,
  summarise,
  type VmObservation,
} from "../scripts/demo/timeline.ts";

const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

const FlagsSchema = z.object({
  steps: z.number().int().min(1).max(100),
  kinds: z.array(z.enum(["cpu", "memory"])).min(1),
  vm: z.string().regex(/^[a-z0-9-]{1,40}$/),
  reuseVm: z.boolean(),
  keepVm: z.boolean(),
  clients: z.number().int().min(1).max(40),
  cpuSeconds: z.number().int().min(10).max(600),
  memOverMib: z.number().int().min(0).max(4096),
  holdSeconds: z.number().int().min(5).max(600),
  settleTimeoutSec: z.number().int().min(10).max(1800),
  maxMinutes: z.number().min(1).max(600),
  kernel: z.enum(["runtime", "image"]),
  tcgTuning: z.boolean(),
  out: z.string().min(1),
});
type Flags = z.infer<typeof FlagsSchema>;

/** A measured step with what the bench knew at its start. */
interface Step extends StepTimes {
  /** Step number (order of execution). */
  i: number;
  /** Guest 1-minute load at t0. */
  load1AtStart: number | undefined;
  /** CPU steps: how far the 1-minute load at t0 was below the next level's scale-up point. */
  load1Gap: number | undefined;
  /** Seconds to the vm-monitor's upscale request (agent log), memory steps. */
  monitorSec: number | undefined;
  /** Whether the load itself finished cleanly. */
  loadOk: boolean;
  /** Notes (e.g. started before the VM settled). */
  note: string;
  /** Epoch ms of t0. */
  t0Ms: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Scrapes the guest's exporter; undefined when it does not answer. */
async function scrapeGuestFull(ip: string, timeoutMs = 3000) {
  try {
    const res = await fetch(`http://${ip}:9100/metrics`, {
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!res.ok) {
      await res.body?.cancel();
      return undefined;
    }
    const p = parsePromText(await res.text());
    const cpus = new Set(
      (p.families.get("node_cpu_seconds_total")?.samples ?? []).map((s) => s.labels["cpu"]),
    );
    const total = p.families.get("node_memory_MemTotal_bytes")?.samples[0]?.value;
    const sys = extractSystemMetrics(p);
    return {
      onlineCpus: cpus.size > 0 ? cpus.size : undefined,
      memTotalBytes: total,
      system: sys.ok ? sys.value : undefined,
    };
  } catch {
    return undefined;
  }
}

/** Polls the guest's exporter in the background; `fast` switches between 2 s and 5 s. */
class GuestPoller {
  readonly history: GuestObservation[] = [];
  fast = false;
  /** The step kind and base level `wantsMore` is judged against. */
  judge: { kind: StepKind; base: VmObservation } | undefined;
  /** Memory in use as the agent counts it (total − available + 100 MiB), last scrape. */
  lastUsageBytes: number | undefined;
  #stop = false;
  #done: Promise<void> | undefined;

  constructor(
    private readonly ip: string,
    private readonly cfg: ScalingConfig,
    private readonly cu: Resources,
    private readonly maxCpuMilli: number,
  ) {}

  get latest(): GuestObservation | undefined {
    return this.history.at(-1);
  }

  start(): void {
    this.#done = (async () => {
      while (!this.#stop) {
        const started = Date.now();
        await this.scrapeOnce();
        const wait = (this.fast ? 2000 : 5000) - (Date.now() - started);
        // Short sleeps so switching to fast takes effect at once.
        for (let left = wait; left > 0 && !this.#stop; left -= 250) {
          await sleep(Math.min(250, left));
          if (this.fast && Date.now() - started >= 2000) break;
        }
      }
    })();
  }

  async scrapeOnce(): Promise<GuestObservation | undefined> {
    const g = await scrapeGuestFull(this.ip);
    if (g === undefined) return undefined;
    this.lastUsageBytes = g.system?.memoryUsageBytes;
    let wantsMore = false;
    if (g.system && this.judge) {
      const goal = computeGoalCu(this.cfg, this.cu, g.system, undefined);
      const b = this.judge.base;
      // Memory: only the memory part of the goal counts (CPU load raises the goal for both).
      wantsMore = this.judge.kind === "cpu"
        ? Math.min(goal.goalCu * this.cu.vCPUs, this.maxCpuMilli) > b.cpuUseMilli
        : Math.ceil(goal.parts.mem ?? 0) * this.cu.mem > b.memUseBytes;
    }
    const o: GuestObservation = {
      tMs: Date.now(),
      onlineCpus: g.onlineCpus,
      memTotalBytes: g.memTotalBytes,
      load1: g.system?.loadAverage1Min,
      wantsMore,
    };
    this.history.push(o);
    return o;
  }

  async stop(): Promise<void> {
    this.#stop = true;
    await this.#done;
  }
}

/** Sums and counts of the agent's request-latency histograms (direction `inc`), by kind. */
type AgentLatencies = Map<string, { sum: number; count: number }>;

/** Reads the agent's global metrics (pod `pod`, port 9100); empty when unreachable. */
async function agentLatencies(c: DemoCluster, pod: string | undefined): Promise<AgentLatencies> {
  const out: AgentLatencies = new Map();
  if (pod === undefined) return out;
  const ip = await kubectl(c, [
    "get",
    "pod",
    "-n",
    "kube-system",
    pod,
    "-o",
    "jsonpath={.status.podIP}",
  ], { timeoutMs: 20_000 });
  if (ip.code !== 0 || !ip.stdout.trim()) return out;
  try {
    const res = await fetch(`http://${ip.stdout.trim()}:9100/metrics`, {
      signal: AbortSignal.timeout(5000),
    });
    const p = parsePromText(await res.text());
    for (const kind of ["plugin", "neonvm", "monitor"]) {
      const get = (suffix: string) =>
        p.families.get(`autoscaling_agent_${kind}_latency_seconds_${suffix}`)?.samples.find((x) =>
          x.labels["direction"] === "inc"
        )?.value ?? 0;
      out.set(kind, { sum: get("sum"), count: get("count") });
    }
  } catch {
    // No figures; the table says so.
  }
  return out;
}

/** Epoch ms of the first agent log line `msg` about VM `ns/name` at or after `sinceMs`. */
async function agentLogTime(
  c: DemoCluster,
  pod: string,
  vmKey: string,
  msg: string,
  sinceMs: number,
): Promise<number | undefined> {
  const r = await kubectl(c, [
    "logs",
    "-n",
    "kube-system",
    pod,
    `--since-time=${new Date(sinceMs - 1000).toISOString()}`,
  ], { timeoutMs: 30_000 });
  if (r.code !== 0) return undefined;
  for (const line of r.stdout.split("\n")) {
    if (!line.includes(msg)) continue;
    try {
      const j = JSON.parse(line) as Record<string, unknown>;
      const t = Date.parse(String(j["ts"]));
      if (j["msg"] === msg && j["virtualmachine"] === vmKey && t >= sinceMs) return t;
    } catch {
      // Not a JSON line.
    }
  }
  return undefined;
}

function loadAvg(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  } catch {
    return "?";
  }
}

const fmtSec = (v: number | undefined) => v === undefined ? "-" : v.toFixed(1);

function fmtValue(kind: StepKind, v: number | undefined): string {
  if (v === undefined) return "-";
  return kind === "cpu" ? formatMilliCpu(v) : formatBinarySi(v);
}

/** Per-step table. */
function stepTable(steps: readonly Step[]): string {
  return textTable(
    [
      "#",
      "LOAD",
      "FROM -> TO",
      "LOAD1@t0",
      "GAP",
      "SIGNAL",
      "MONITOR",
      "REQUEST",
      "APPROVED",
      "PATCH",
      "STATUS",
      "GUEST",
      "LOAD OK",
      "NOTE",
    ],
    steps.map((s) => [
      String(s.i),
      s.kind,
      `${fmtValue(s.kind, s.fromValue)} -> ${fmtValue(s.kind, s.toValue)}`,
      s.load1AtStart === undefined ? "-" : s.load1AtStart.toFixed(2),
      s.load1Gap === undefined ? "-" : s.load1Gap.toFixed(2),
      fmtSec(s.signalSec),
      fmtSec(s.monitorSec),
      fmtSec(s.requestSec),
      fmtSec(s.approvedSec),
      fmtSec(s.patchSec),
      fmtSec(s.statusSec),
      fmtSec(s.guestSec),
      s.loadOk ? "yes" : "NO",
      s.note,
    ]),
  );
}

/** p50/p95 per kind for load → patch, → status, → guest. */
function summaryTable(steps: readonly Step[], kinds: readonly StepKind[]): string {
  const rows: string[][] = [];
  for (const kind of kinds) {
    // Steps whose load failed (e.g. the guest was down) measure nothing; they are listed above.
    const mine = steps.filter((s) => s.kind === kind && s.loadOk);
    const label = kind === "cpu" ? "CPU load" : "memory pressure";
    for (
      const r of [
        summarise(`${label} -> agent patch`, mine, (s) => s.patchSec),
        summarise(`${label} -> status (runner)`, mine, (s) => s.statusSec),
        summarise(
          `${label} -> guest (${kind === "cpu" ? "CPUs online" : "MemTotal"})`,
          mine,
          (s) => s.guestSec,
        ),
      ]
    ) {
      rows.push([r.label, String(r.n), String(r.missing), fmtSec(r.p50), fmtSec(r.p95)]);
    }
  }
  return textTable(["INTERVAL", "N", "MISSING", "p50 s", "p95 s"], rows);
}

/** Where the time goes: p50 (p95) of each stage-to-stage interval, per kind. */
function breakdownTable(steps: readonly Step[], kinds: readonly StepKind[]): string {
  const rows: string[][] = [];
  const add = (kind: StepKind, label: string, f: (s: Step) => number | undefined) => {
    const r = summarise(
      label,
      steps.filter((s) => s.kind === kind && s.loadOk),
      (s) => f(s as Step),
    );
    rows.push([kind, label, String(r.n), fmtSec(r.p50), fmtSec(r.p95)]);
  };
  for (const kind of kinds) {
    add(kind, "t0 -> signal (metric crosses the scale-up point)", (s) => s.signalSec);
    if (kind === "memory") add(kind, "t0 -> vm-monitor upscale request", (s) => s.monitorSec);
    add(
      kind,
      "signal -> request recorded (scrape phase + agent + plugin)",
      (s) => between(s.signalSec, s.requestSec),
    );
    add(
      kind,
      "request -> approved recorded (one scheduler write)",
      (s) => between(s.requestSec, s.approvedSec),
    );
    add(kind, "approved recorded -> patch", (s) => between(s.approvedSec, s.patchSec));
    add(kind, "signal -> patch", (s) => between(s.signalSec, s.patchSec));
    add(
      kind,
      "patch -> status (controller, runner, QMP/daemon)",
      (s) => between(s.patchSec, s.statusSec),
    );
    add(kind, "patch -> guest", (s) => between(s.patchSec, s.guestSec));
  }
  return textTable(["LOAD", "STAGE", "N", "p50 s", "p95 s"], rows);
}

async function main(): Promise<number> {
  const log = createLogger("bench.reaction");
  const { values } = parseArgs({
    args: Deno.args,
    strict: true,
    options: {
      steps: { type: "string", default: "10" },
      kinds: { type: "string", default: "cpu,memory" },
      vm: { type: "string", default: "bench-react" },
      "reuse-vm": { type: "boolean", default: false },
      "keep-vm": { type: "boolean", default: false },
      clients: { type: "string", default: "6" },
      "cpu-seconds": { type: "string", default: "40" },
      "mem-over-mib": { type: "string", default: "300" },
      "hold-seconds": { type: "string", default: "25" },
      "settle-timeout-seconds": { type: "string", default: "150" },
      "max-minutes": { type: "string", default: "40" },
      kernel: { type: "string", default: "runtime" },
      "no-tcg-tuning": { type: "boolean", default: false },
      out: { type: "string" },
      "from-json": { type: "string" },
    },
  });
  if (values["from-json"] !== undefined) return await fromJson(values["from-json"]);
  const stamp = new Date().toISOString().replaceAll(":", "").replace(/\.\d+Z$/, "Z");
  const parsed = FlagsSchema.safeParse({
    steps: Number(values.steps),
    kinds: values.kinds.split(",").map((s) => s.trim()),
    vm: values.vm,
    reuseVm: values["reuse-vm"],
    keepVm: values["keep-vm"],
    clients: Number(values.clients),
    cpuSeconds: Number(values["cpu-seconds"]),
    memOverMib: Number(values["mem-over-mib"]),
    holdSeconds: Number(values["hold-seconds"]),
    settleTimeoutSec: Number(values["settle-timeout-seconds"]),
    maxMinutes: Number(values["max-minutes"]),
    kernel: values.kernel,
    tcgTuning: !values["no-tcg-tuning"],
    out: values.out ?? `${DEFAULT_CACHE_DIR}/bench/reaction-${stamp}`,
  });
  if (!parsed.success) {
    log.error("invalid flags", {
      issues: parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "),
    });
    return 2;
  }
  return await run(log, parsed.data);
}

const SavedSchema = z.object({
  steps: z.array(z.looseObject({ kind: z.enum(["cpu", "memory"]), loadOk: z.boolean() })),
});

/** Prints the tables again from saved `reaction.json` files (several: their steps together). */
async function fromJson(files: string): Promise<number> {
  const steps: Step[] = [];
  for (const file of files.split(",")) {
    const saved = SavedSchema.parse(JSON.parse(await Deno.readTextFile(file.trim())));
    // The schema checks what the tables filter on; the rest was written by this program.
    steps.push(...(saved.steps as unknown as Step[]));
  }
  const kinds = [...new Set(steps.map((s) => s.kind))];
  const say = (s: string) => Deno.stdout.writeSync(new TextEncoder().encode(s + "\n"));
  say(`steps from ${files}\n`);
  say(stepTable(steps));
  say("");
  say(summaryTable(steps, kinds));
  say("\nWhere the time goes (stage to stage):");
  say(breakdownTable(steps, kinds));
  return 0;
}

async function run(log: Logger, flags: Flags): Promise<number> {
  const tStart = Date.now();
  const loadAtStart = loadAvg();
  const agentCfg = parseAgentConfig(
    JSON.parse(await Deno.readTextFile(`${REPO}/deploy/agent/config.json`)),
  );
  const overrides = flags.tcgTuning ? { ...TCG_SCALING_CONFIG } : undefined;
  const cfg = withOverrides(agentCfg.scaling.defaultConfig, overrides);
  const cu = agentCfg.scaling.computeUnit;

  const c = await loadCluster();
  const tSetup = Date.now();
  await ensureImages(log, c);
  await deployStack(log, c);
  let started: Awaited<ReturnType<typeof startVm>>;
  try {
    started = await startVm(log, c, {
      name: flags.vm,
      reuse: flags.reuseVm,
      ...(flags.kernel === "runtime" ? { kernelImage: null } : {}),
      ...(overrides ? { scalingConfig: overrides } : {}),
    });
    await pgbenchInit(started.target, started.ip, 1);
  } catch (e) {
    if (!flags.keepVm) await deleteVm(c, flags.vm);
    throw e;
  }
  const bootSec = (Date.now() - tSetup) / 1000;
  log.info("VM up", { vm: flags.vm, ip: started.ip, setupSeconds: Math.round(bootSec) });

  const kube = KubeClient.fromAccess(
    await loadClusterAccess({ kubeconfigPath: c.kubeconfig }),
    { userAgent: "neonvm-bench-reaction" },
  );
  const watch = new VmWatch(kube, DEMO_NAMESPACE, flags.vm, log);
  watch.start();
  await waitUntil(log, "first VM state", () => Promise.resolve(watch.vm), {
    timeoutMs: 30_000,
    intervalMs: 200,
  });
  const spec = watch.vm!.spec.guest;
  const cpuMin = spec.cpus.min;
  const cpuMax = spec.cpus.max;
  const memMin = spec.memorySlots.min * spec.memorySlotSize;
  const memMax = spec.memorySlots.max * spec.memorySlotSize;
  const guestPoll = new GuestPoller(started.ip, cfg, cu, cpuMax);
  guestPoll.start();
  const vmKey = `${DEMO_NAMESPACE}/${flags.vm}`;

  const agentPod = watch.vm?.status?.node
    ? (await agentPodsOn(c, watch.vm.status.node))[0]
    : undefined;
  const latBefore = await agentLatencies(c, agentPod);
  let latAfter: AgentLatencies = new Map();
  const steps: Step[] = [];
  const deadlineMs = tStart + flags.maxMinutes * 60_000;
  try {
    // Steady: Running, status equal to spec, no spec change for 10 s.
    const steady = () => {
      const o = watch.latest;
      return o !== undefined && o.phase === "Running" && o.cpuStatusMilli === o.cpuUseMilli &&
        o.memStatusBytes === o.memUseBytes && Date.now() - watch.lastSpecChangeMs() > 10_000;
    };
    await waitUntil(log, "VM steady after boot", () => Promise.resolve(steady() || undefined), {
      timeoutMs: flags.settleTimeoutSec * 1000,
      intervalMs: 1000,
      describe: () => JSON.stringify(watch.latest ?? {}),
    }).catch(() => log.warn("VM not steady after boot; going on"));
    // A step starts once the guest's 1-minute load is flat: it moved less than 0.2 in the last
    // 30 s. Under TCG an idle guest's load is 1-2, not 0; after a load it decays for minutes (and
    // the VM steps down, leaving the load just under the next scale-up point), and after a step it
    // may still be rising: both would shorten the next step's reaction. Flat for 30 s means
    // within about 0.5 of the idle level (the table shows the load and its gap at t0).
    const loadSettled = () => {
      const h = guestPoll.history;
      const now = h.at(-1);
      const a30 = h.findLast((g) => now !== undefined && g.tMs <= now.tMs - 30_000)?.load1;
      return now?.load1 !== undefined && a30 !== undefined && Math.abs(now.load1 - a30) < 0.2;
    };

    const waitReady = async (kind: StepKind): Promise<string> => {
      const ready = (strict: boolean) => {
        const o = watch.latest;
        if (o === undefined || !steady()) return false;
        // Both kinds start from the level the VM holds at idle: CPU and memory move together
        // (one goal in compute units), so after a CPU step memory is high too until the load
        // average has come down.
        // Memory steps stay 2 GiB below the maximum: a guest that fills its 8 GiB maximum was
        // OOM-killed by the runner pod's memory limit (max + 256 MiB overhead, measured).
        if (kind === "cpu" ? o.cpuUseMilli >= cpuMax : o.memUseBytes > memMax - 2 * GiB) {
          return false;
        }
        return !strict || loadSettled();
      };
      const t0 = Date.now();
      const describe = () => {
        const o = watch.latest;
        return o
          ? `${formatMilliCpu(o.cpuUseMilli)} vCPU (status ${o.cpuStatusMilli}), ${
            formatBinarySi(o.memUseBytes)
          }, load1 ${guestPoll.latest?.load1}`
          : "";
      };
      try {
        await waitUntil(
          log,
          `ready for a ${kind} step`,
          () => Promise.resolve(ready(true) || undefined),
          {
            timeoutMs: flags.settleTimeoutSec * 1000,
            intervalMs: 1000,
            describe,
          },
        );
        return "";
      } catch {
        await waitUntil(
          log,
          `steady for a ${kind} step`,
          () => Promise.resolve(ready(false) || undefined),
          {
            timeoutMs: flags.settleTimeoutSec * 1000,
            intervalMs: 1000,
            describe,
          },
        );
        return `not settled after ${Math.round((Date.now() - t0) / 1000)} s`;
      }
    };

    const runStep = async (kind: StepKind, i: number): Promise<Step> => {
      let note = "";
      try {
        note = await waitReady(kind);
      } catch (e) {
        return {
          ...stepTimes(kind, Date.now(), watch.latest!, undefined, [], []),
          i,
          load1AtStart: guestPoll.latest?.load1,
          load1Gap: undefined,
          monitorSec: undefined,
          loadOk: false,
          note: `skipped: ${e instanceof Error ? e.message.slice(0, 80) : e}`,
          t0Ms: Date.now(),
        };
      }
      const base = watch.latest!;
      guestPoll.judge = { kind, base };
      const baseGuest = await guestPoll.scrapeOnce();
      guestPoll.fast = true;
      const t0 = Date.now();
      const node = watch.vm?.status?.node;
      let loadOk = false;
      let loadDone = false;
      let ended = false;
      let load: Promise<void>;
      if (kind === "cpu") {
        load = pgbenchRun(started.target, started.ip, {
          clients: flags.clients,
          seconds: flags.cpuSeconds,
        }).then((r) => {
          loadOk = r.code === 0 && !r.connectionBroken;
          if (!loadOk) log.warn("pgbench", { code: r.code, tail: r.tail });
        });
      } else {
        // Enough memory to put the agent's measure `memOverMib` above its scale-up point; filled
        // by memcpy, so the step is memory, not CPU (the demo's old string_agg hog also drove the
        // load average up, and CPU and memory move together).
        const plan = pressurePlan(
          base.memUseBytes,
          guestPoll.lastUsageBytes ?? 0.5 * GiB,
          cfg.memoryUsageFractionTarget,
          flags.memOverMib,
        );
        load = memoryPressure(
          started.target,
          started.ip,
          plan.mib,
          plan.parallel,
          flags.holdSeconds,
        ).then((r) => {
          loadOk = r.ok || ended;
          if (!loadOk) log.warn("memory pressure", { output: r.output });
        });
      }
      void load.finally(() => loadDone = true);
      // Follow the step until the guest has it, or the load is over (plus a grace period).
      let doneAt: number | undefined;
      for (;;) {
        await sleep(500);
        const s = stepTimes(kind, t0, base, baseGuest, watch.history, guestPoll.history);
        const wholeCpuMore = kind === "cpu" && s.toValue !== undefined &&
          baseGuest?.onlineCpus !== undefined &&
          Math.ceil(s.toValue / 1000) > baseGuest.onlineCpus;
        const guestWanted = kind === "memory" || wholeCpuMore;
        const complete = s.patchSec !== undefined && s.statusSec !== undefined &&
          (!guestWanted || s.guestSec !== undefined);
        if (complete || loadDone) doneAt ??= Date.now();
        if (doneAt !== undefined && (complete || Date.now() - doneAt > 20_000)) break;
      }
      guestPoll.fast = false;
      if (kind === "memory" && !loadDone) {
        // The guest has it: end the queries rather than wait for them (filling memory under TCG
        // is slow, and the next step needs the memory back).
        ended = true;
        await endMemoryPressure(started.target, started.ip);
      }
      await load;
      const times = stepTimes(kind, t0, base, baseGuest, watch.history, guestPoll.history);
      let monitorSec: number | undefined;
      if (kind === "memory" && node) {
        const pod = (await agentPodsOn(c, node))[0];
        const t = pod
          ? await agentLogTime(c, pod, vmKey, "monitor requested upscale", t0)
          : undefined;
        if (t !== undefined) monitorSec = (t - t0) / 1000;
      }
      return {
        ...times,
        i,
        load1AtStart: baseGuest?.load1,
        load1Gap: kind === "cpu" && baseGuest?.load1 !== undefined
          ? (base.cpuUseMilli / cu.vCPUs + 0.5) * cfg.loadAverageFractionTarget * cu.vCPUs / 1000 -
            baseGuest.load1
          : undefined,
        monitorSec,
        loadOk,
        note,
        t0Ms: t0,
      };
    };

    let i = 0;
    outer: for (let round = 0; round < flags.steps; round++) {
      for (const kind of flags.kinds) {
        if (Date.now() > deadlineMs) {
          log.warn("time budget used up; no more steps", { maxMinutes: flags.maxMinutes });
          break outer;
        }
        const step = await runStep(kind, i++);
        steps.push(step);
        log.info("step", { ...step });
        Deno.stderr.writeSync(new TextEncoder().encode(stepTable([step]).split("\n")[1] + "\n"));
      }
    }
    latAfter = await agentLatencies(c, agentPod);
  } finally {
    await guestPoll.stop();
    await watch.stop();
    kube[Symbol.dispose]();
    await Deno.mkdir(flags.out, { recursive: true });
    await Deno.writeTextFile(
      `${flags.out}/reaction.json`,
      JSON.stringify({ flags, steps, vm: watch.history, guest: guestPoll.history }, null, 1),
    );
    if (!flags.keepVm) await deleteVm(c, flags.vm);
  }

  const say = (s: string) => Deno.stdout.writeSync(new TextEncoder().encode(s + "\n"));
  say(
    `\nReaction-time benchmark: VM ${vmKey} (${formatMilliCpu(cpuMin)}–${
      formatMilliCpu(cpuMax)
    } vCPU, ${formatBinarySi(memMin)}–${formatBinarySi(memMax)}), kernel: ${flags.kernel}, ` +
      `loadAverageFractionTarget ${cfg.loadAverageFractionTarget}, memoryUsageFractionTarget ${cfg.memoryUsageFractionTarget}, ` +
      `agent scrape every ${agentCfg.metrics.system.secondsBetweenRequests} s`,
  );
  say(
    `setup (images, deploy, boot, Postgres up) ${Math.round(bootSec)} s; steps ${
      Math.round((Date.now() - tStart) / 1000 - bootSec)
    } s; host load average at start ${loadAtStart}, at end ${loadAvg()}`,
  );
  say(
    `seconds from the load's start (t0 = kubectl exec spawned); raw data ${flags.out}/reaction.json\n`,
  );
  say(stepTable(steps));
  say("");
  say(summaryTable(steps, flags.kinds));
  say("\nWhere the time goes (stage to stage):");
  say(breakdownTable(steps, flags.kinds));
  const lat = ["plugin", "neonvm", "monitor"].map((k) => {
    const a = latBefore.get(k);
    const b = latAfter.get(k);
    const n = (b?.count ?? 0) - (a?.count ?? 0);
    const sum = (b?.sum ?? 0) - (a?.sum ?? 0);
    const name = k === "plugin"
      ? "permit request (agent -> scheduler)"
      : k === "neonvm"
      ? "NeonVM patch (agent -> API server)"
      : "monitor UpscaleNotification";
    return `${name}: ${n > 0 ? `${(sum / n * 1000).toFixed(0)} ms mean over ${n}` : "none seen"}`;
  });
  say(
    `\nAgent-side request latencies during the steps (histograms of the agent on the VM's node, all its VMs, upscales): ${
      lat.join("; ")
    }`,
  );
  return 0;
}

if (import.meta.main) Deno.exit(await main());
