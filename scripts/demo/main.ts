/**
 * `deno task demo`: the whole stack on the local cluster and a Postgres VM that scales with its
 * load. Brings the cluster up, builds and imports the images, deploys (CRDs, then deploy/local),
 * builds the Postgres guest, starts the demo VM and a load pod, then runs a CPU-heavy pgbench, an
 * idle pause, a memory-heavy query and another pause while a live table shows the VM scaling.
 * The VM boots the runtime image's kernel and initramfs. Ends with the time of each stage, the
 * timeline picture (SVG) and CSV under the output directory, and the reaction times of the two load
 * stages (timed with a watch on the VM). Progress is JSON lines on standard error; the table and
 * summary go to standard output.
 *
 * Usage: deno task demo [--skip-cluster-up] [--reuse-vm] [--out DIR] [--cpu-seconds N]
 *        [--clients N] [--mem-over-mib N] [--idle-timeout-seconds N] [--no-load] [--no-tcg-tuning]
 * @module
 */
import { parseArgs } from "node:util";
import { z } from "zod";
import { DEFAULT_CACHE_DIR } from "../cluster/layout.ts";
import { KubeClient } from "../../src/lib/k8s/client.ts";
import { loadClusterAccess } from "../../src/lib/k8s/kubeconfig.ts";
import { createLogger, type Logger } from "../../src/lib/log.ts";
import { errorChainMessage } from "../../src/lib/errors.ts";
import { formatBinarySi, formatMilliCpu, GiB } from "../../src/api/quantity.ts";
import { parseAgentConfig } from "../../src/api/agent_config.ts";
import { type DemoCluster, loadCluster, memoryPressure, VmWatch, waitUntil } from "./cluster.ts";
import { pgbenchInit, pgbenchRun, Sampler } from "./load.ts";
import { DEMO_NAMESPACE, TCG_SCALING_CONFIG } from "./manifests.ts";
import { renderTimelineSvg, samplesToCsv, textTable } from "./render.ts";
import { deployStack, ensureImages, runChild, say, type StartedVm, startVm } from "./stack.ts";
import { readStatus } from "./status.ts";
import {
  pressurePlan,
  reactionOf,
  type StepKind,
  type StepTimes,
  stepTimes,
  toSamples,
} from "./timeline.ts";

const VM_NAME = "pg-demo";

const FlagsSchema = z.object({
  skipClusterUp: z.boolean(),
  reuseVm: z.boolean(),
  noLoad: z.boolean(),
  noTcgTuning: z.boolean(),
  out: z.string().min(1),
  cpuSeconds: z.number().int().min(10).max(3600),
  clients: z.number().int().min(1).max(40),
  memOverMib: z.number().int().min(0).max(4096),
  idleTimeoutSec: z.number().int().min(10).max(3600),
});
type Flags = z.infer<typeof FlagsSchema>;

/** Named durations of the demo's stages, in order. */
type Timings = [string, number][];

/** Runs `f` and records how long it took under `name`. */
async function timed<T>(timings: Timings, name: string, f: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  try {
    return await f();
  } finally {
    timings.push([name, (performance.now() - t0) / 1000]);
  }
}

/** Brings up the stack and the VM; returns where to run load. */
async function setUp(
  log: Logger,
  flags: Flags,
  timings: Timings,
): Promise<{ c: DemoCluster; vm: StartedVm }> {
  if (!flags.skipClusterUp) {
    say("==> local cluster (deno task cluster:up)");
    await timed(
      timings,
      "cluster up",
      () => runChild(log, "cluster:up", ["run", "-A", "scripts/cluster/main.ts", "up"]),
    );
  }
  const c = await loadCluster();
  await timed(timings, "images", () => ensureImages(log, c));
  await timed(timings, "deploy", () => deployStack(log, c));
  say("==> demo VM (0.25–2 vCPU, 1–8 GiB, autoscaling on) and load pod");
  // Runner pods on the local cluster get no /dev/kvm (no device plugin), so guests run under TCG
  // even when the host has KVM. The guest boots the kernel and initramfs the runtime image
  // carries (/vm/kernel), so the VM names no kernel image.
  const vm = await timed(timings, "VM boot until Postgres answers", () =>
    startVm(log, c, {
      name: VM_NAME,
      reuse: flags.reuseVm,
      kernelImage: null,
      ...(flags.noTcgTuning ? {} : { scalingConfig: { ...TCG_SCALING_CONFIG } }),
    }));
  return { c, vm };
}

/** Writes the timeline so far (CSV, SVG, raw points) into `dir`. */
async function writeTimeline(dir: string, points: Sampler["points"]): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const samples = toSamples(points);
  await Deno.writeTextFile(`${dir}/timeline.csv`, samplesToCsv(samples));
  await Deno.writeTextFile(
    `${dir}/timeline.svg`,
    renderTimelineSvg(samples, `neonvm-ts demo: ${DEMO_NAMESPACE}/${VM_NAME} under load`),
  );
  await Deno.writeTextFile(`${dir}/points.json`, JSON.stringify(points));
}

/**
 * Prints the status table every `everyMs` until the signal aborts, and rewrites the timeline so
 * far, so an interrupted demo still leaves its picture.
 */
async function liveTable(
  kube: KubeClient,
  everyMs: number,
  signal: AbortSignal,
  sampler: Sampler,
  outDir: string,
): Promise<void> {
  while (!signal.aborted) {
    try {
      const table = await readStatus(kube, AbortSignal.timeout(10_000));
      say(`\n--- ${new Date().toISOString()} ---\n${table}`);
      await writeTimeline(outDir, sampler.points);
    } catch {
      // The next round retries.
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * Waits until the VM is back at its minimum, or has come down from its 2 vCPU maximum and held
 * still for 60 s (under TCG an idle guest is not fully idle, see TCG_SCALING_CONFIG); false on
 * timeout.
 */
async function waitForLow(
  log: Logger,
  sampler: Sampler,
  what: string,
  timeoutSec: number,
): Promise<boolean> {
  let key = "";
  let since = performance.now();
  try {
    await waitUntil(log, what, () => {
      const s = sampler.latest;
      if (!s) return Promise.resolve(undefined);
      const k = `${s.cpuUseMilli}/${s.memUseBytes}`;
      if (k !== key) [key, since] = [k, performance.now()];
      const atMin = s.cpuUseMilli <= 250 && s.memUseBytes <= GiB;
      const still = performance.now() - since > 60_000 && s.cpuUseMilli < 2000;
      return Promise.resolve(atMin || still ? true : undefined);
    }, {
      timeoutMs: timeoutSec * 1000,
      intervalMs: 1000,
      describe: () => {
        const s = sampler.latest;
        return s ? `${formatMilliCpu(s.cpuUseMilli)} vCPU, ${formatBinarySi(s.memUseBytes)}` : "";
      },
    });
    return true;
  } catch {
    return false;
  }
}

async function main(): Promise<number> {
  const log = createLogger("demo");
  const { values } = parseArgs({
    args: Deno.args,
    strict: true,
    options: {
      "skip-cluster-up": { type: "boolean", default: false },
      "reuse-vm": { type: "boolean", default: false },
      "no-load": { type: "boolean", default: false },
      "no-tcg-tuning": { type: "boolean", default: false },
      out: { type: "string" },
      "cpu-seconds": { type: "string", default: "150" },
      clients: { type: "string", default: "6" },
      "mem-over-mib": { type: "string", default: "300" },
      "idle-timeout-seconds": { type: "string", default: "420" },
    },
  });
  const stamp = new Date().toISOString().replaceAll(":", "").replace(/\.\d+Z$/, "Z");
  const parsed = FlagsSchema.safeParse({
    skipClusterUp: values["skip-cluster-up"],
    reuseVm: values["reuse-vm"],
    noLoad: values["no-load"],
    noTcgTuning: values["no-tcg-tuning"],
    out: values.out ?? `${DEFAULT_CACHE_DIR}/demo/${stamp}`,
    cpuSeconds: Number(values["cpu-seconds"]),
    clients: Number(values.clients),
    memOverMib: Number(values["mem-over-mib"]),
    idleTimeoutSec: Number(values["idle-timeout-seconds"]),
  });
  if (!parsed.success) {
    log.error("invalid flags", {
      issues: parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "),
    });
    return 2;
  }
  const flags = parsed.data;
  const t0 = performance.now();
  const timings: Timings = [];
  const { c, vm } = await setUp(log, flags, timings);
  const { target, ip } = vm;
  const kube = KubeClient.fromAccess(
    await loadClusterAccess({ kubeconfigPath: c.kubeconfig }),
    { userAgent: "neonvm-demo" },
  );
  say(`\n${await readStatus(kube)}\n`);
  say(`stack and VM up in ${Math.round((performance.now() - t0) / 1000)} s`);
  if (flags.noLoad) {
    kube[Symbol.dispose]();
    return 0;
  }

  say("==> pgbench -i (prepare)");
  await timed(timings, "pgbench -i", () => pgbenchInit(target, ip, 2));

  const sampler = new Sampler(c, DEMO_NAMESPACE, VM_NAME, 1000);
  sampler.stage = "idle";
  sampler.start();
  // The watch times the agent's patch and the status change exactly (the sampler rounds to 1 s).
  const watch = new VmWatch(kube, DEMO_NAMESPACE, VM_NAME, log);
  watch.start();
  const tableStop = new AbortController();
  say(`timeline (rewritten every 10 s): ${flags.out}/timeline.svg`);
  const table = liveTable(kube, 10_000, tableStop.signal, sampler, flags.out);
  // Boot itself is load: the VM may have grown; start the story from the floor.
  say("==> idle: waiting for the VM to settle after boot before the load");
  await timed(
    timings,
    "idle (settle after boot)",
    () => waitForLow(log, sampler, "settle before load", flags.idleTimeoutSec),
  );
  await new Promise((r) => setTimeout(r, 10_000));

  /** Times a load stage from its start on the watch's history. */
  const reactions: StepTimes[] = [];
  const stageStart = (kind: StepKind) => {
    const base = watch.latest;
    const startMs = Date.now();
    return () => {
      if (base !== undefined) {
        reactions.push(stepTimes(kind, startMs, base, undefined, watch.history, []));
      }
    };
  };

  say(`==> cpu-load: pgbench -S, ${flags.clients} clients, ${flags.cpuSeconds} s`);
  sampler.stage = "cpu-load";
  const cpuDone = stageStart("cpu");
  const bench = await timed(timings, "cpu-load (pgbench)", () =>
    pgbenchRun(target, ip, {
      clients: flags.clients,
      seconds: flags.cpuSeconds,
    }));
  cpuDone();
  say(
    `pgbench: exit ${bench.code}, ${bench.transactions ?? "?"} transactions, tps ${
      bench.tps ?? "?"
    }, failed ${bench.failed}, connection broken: ${bench.connectionBroken}`,
  );
  sampler.stage = "cpu-idle";
  say("==> cpu-idle: no load until the VM has come back down");
  const cpuDown = await timed(
    timings,
    "cpu-idle (until back down)",
    () => waitForLow(log, sampler, "scale down after CPU load", flags.idleTimeoutSec),
  );

  // Queries that fill memory with memcpy (hardly any CPU, so this stage shows memory, not the
  // load average) up to a little above the agent's scale-up point for the VM's present size.
  const agentCfg = parseAgentConfig(
    JSON.parse(await Deno.readTextFile(new URL("../../deploy/agent/config.json", import.meta.url))),
  );
  const usedBytes = sampler.points.findLast((p) => p.memUsedBytes !== undefined)?.memUsedBytes;
  const plan = pressurePlan(
    sampler.latest?.memUseBytes ?? GiB,
    usedBytes ?? GiB / 2,
    agentCfg.scaling.defaultConfig.memoryUsageFractionTarget,
    flags.memOverMib,
  );
  say(`==> memory-load: ${plan.parallel} parallel queries each holding ${plan.mib} MiB for 20 s`);
  sampler.stage = "memory-load";
  const memDone = stageStart("memory");
  const hog = await timed(
    timings,
    "memory-load (queries)",
    () => memoryPressure(target, ip, plan.mib, plan.parallel, 20),
  );
  memDone();
  say(
    `memory queries: ${hog.ok ? "finished" : "FAILED"} in ${hog.seconds} s ${
      hog.ok ? "" : hog.output
    }`,
  );
  sampler.stage = "memory-idle";
  say("==> memory-idle: no load until the VM has come back down");
  const memDown = await timed(
    timings,
    "memory-idle (until back down)",
    () => waitForLow(log, sampler, "scale down after memory load", flags.idleTimeoutSec),
  );
  await sampler.stop();
  await watch.stop();
  tableStop.abort();
  await table;

  await writeTimeline(flags.out, sampler.points);

  const rows = [
    reactionOf(sampler.points, "cpu-load", "up", 2000),
    reactionOf(sampler.points, "cpu-idle", "down", 250),
    reactionOf(sampler.points, "memory-load", "up"),
    reactionOf(sampler.points, "memory-idle", "down"),
  ].filter((r) => r !== undefined).map((r) => [
    r.stage,
    r.direction,
    r.resource,
    r.patchSec === undefined ? "-" : `${r.patchSec.toFixed(1)} s`,
    r.guestSec === undefined ? "-" : `${r.guestSec.toFixed(1)} s`,
    r.targetSec === undefined ? "-" : `${r.targetSec.toFixed(1)} s`,
  ]);
  const peak = sampler.points.reduce(
    (a, p) => ({
      cpu: Math.max(a.cpu, p.cpuStatusMilli ?? 0),
      mem: Math.max(a.mem, p.memStatusBytes ?? 0),
    }),
    { cpu: 0, mem: 0 },
  );
  timings.push(["total", (performance.now() - t0) / 1000]);
  say(`\n${await readStatus(kube)}\n`);
  say("Stage timings:");
  say(textTable(["STAGE", "SECONDS"], timings.map(([n, sec]) => [n, sec.toFixed(0)])));
  say("\nScaling per stage (from the stage start; sampled every 1 s):");
  say(textTable(
    ["STAGE", "DIRECTION", "FIRST", "AGENT PATCH", "GUEST HAS IT", "CPU AT BOUND"],
    rows,
  ));
  say(
    `\npeak: ${formatMilliCpu(peak.cpu)} vCPU, ${formatBinarySi(peak.mem)}; came back down ` +
      `after CPU load: ${cpuDown}, after memory load: ${memDown}; pgbench connection broken: ${bench.connectionBroken} (exit ${bench.code}); memory query ${
        hog.ok ? "ok" : "failed"
      }`,
  );
  say(`\ntimeline picture: ${flags.out}/timeline.svg\ntimeline data:    ${flags.out}/timeline.csv`);
  say(reactionSummary(reactions));
  kube[Symbol.dispose]();
  return 0;
}

/** One line per load stage: seconds from its start to the agent's patch and to `status`. */
function reactionSummary(reactions: readonly StepTimes[]): string {
  const f = (v: number | undefined) => v === undefined ? "none" : `${v.toFixed(1)} s`;
  const lines = reactions.map((r) =>
    `  ${r.kind === "cpu" ? "CPU load       " : "memory pressure"}: agent patch after ${
      f(r.patchSec)
    }, guest has it (status) after ${f(r.statusSec)}`
  );
  return ["reaction times (from the load's start; bench:reaction gives p50/p95 over many steps):"]
    .concat(lines.length > 0 ? lines : ["  none measured"]).join("\n");
}

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (err) {
    createLogger("demo").error("demo failed", { error: err });
    Deno.stderr.writeSync(new TextEncoder().encode(`demo: ${errorChainMessage(err)}\n`));
    Deno.exit(1);
  }
}
