/**
 * Reaction-time benchmark on the local cluster with the deployed stack (needs `deno task
 * cluster:up`; deploys the stack and a Postgres VM like `deno task demo`). For each step the VM
 * starts at its minimum, a load begins, and we time (sampling the VM every 0.5 s) the start of
 * the load to the agent's patch of `spec` (the first increase) and to the guest having the new
 * resources (`status`). CPU steps run pgbench; memory steps run a query holding ~1 GiB. Between
 * steps the VM returns to its minimum (CPU load averages decay over minutes, so a CPU step takes
 * about 4 minutes under TCG). Prints p50/p95 per kind as a table.
 *
 * Usage: deno run -A bench/reaction_bench.ts [--steps 10] [--kinds cpu,memory] [--vm NAME]
 *        [--reuse-vm]
 * @module
 */
import { parseArgs } from "node:util";
import { z } from "zod";
import { GiB } from "../src/api/quantity.ts";
import { createLogger } from "../src/lib/log.ts";
import {
  getVm,
  loadCluster,
  snapshotOf,
  type VmSnapshot,
  waitUntil,
} from "../scripts/demo/cluster.ts";
import { memoryHog, pgbenchInit, pgbenchRun } from "../scripts/demo/load.ts";
import { DEMO_NAMESPACE } from "../scripts/demo/manifests.ts";
import { textTable } from "../scripts/demo/render.ts";
import { deployStack, ensureImages, startVm } from "../scripts/demo/stack.ts";
import { percentile } from "../scripts/demo/timeline.ts";

const FlagsSchema = z.object({
  steps: z.number().int().min(1).max(100),
  kinds: z.array(z.enum(["cpu", "memory"])).min(1),
  vm: z.string().regex(/^[a-z0-9-]{1,40}$/),
  reuseVm: z.boolean(),
});

/** One measured step. */
interface Step {
  kind: "cpu" | "memory";
  patchSec: number | undefined;
  guestSec: number | undefined;
}

const log = createLogger("bench.reaction");

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    strict: true,
    options: {
      steps: { type: "string", default: "10" },
      kinds: { type: "string", default: "cpu,memory" },
      vm: { type: "string", default: "bench-react" },
      "reuse-vm": { type: "boolean", default: false },
    },
  });
  const flags = FlagsSchema.parse({
    steps: Number(values.steps),
    kinds: values.kinds.split(",").map((s) => s.trim()),
    vm: values.vm,
    reuseVm: values["reuse-vm"],
  });
  const c = await loadCluster();
  await ensureImages(log, c);
  await deployStack(log, c);
  const vm = await startVm(log, c, { name: flags.vm, reuse: flags.reuseVm });
  await pgbenchInit(vm.target, vm.ip, 1);
  const read = async (): Promise<VmSnapshot> =>
    snapshotOf((await getVm(c, DEMO_NAMESPACE, flags.vm))!);

  const atMin = () =>
    waitUntil(log, "VM at its minimum", async () => {
      const s = await read();
      return s.cpuUseMilli <= 250 && s.memUseBytes <= GiB && s.cpuStatusMilli === 250 &&
          s.memStatusBytes === GiB
        ? s
        : undefined;
    }, { timeoutMs: 10 * 60_000, intervalMs: 2000 });

  const steps: Step[] = [];
  for (let i = 0; i < flags.steps; i++) {
    for (const kind of flags.kinds) {
      const s0 = await atMin();
      // Let the 1-minute load average settle a little below the scale-up point.
      await new Promise((r) => setTimeout(r, 5000));
      const t0 = performance.now();
      const load = kind === "cpu"
        ? pgbenchRun(vm.target, vm.ip, { clients: 6, seconds: 90 })
        : memoryHog(vm.target, vm.ip, 700, 5, 10 * 60_000);
      let patchSec: number | undefined;
      let guestSec: number | undefined;
      let settled = false;
      void load.finally(() => settled = true);
      while ((patchSec === undefined || guestSec === undefined) && !settled) {
        const s = await read().catch(() => undefined);
        const dt = (performance.now() - t0) / 1000;
        if (s) {
          const up = kind === "cpu"
            ? s.cpuUseMilli > s0.cpuUseMilli
            : s.memUseBytes > s0.memUseBytes;
          const guest = kind === "cpu"
            ? (s.cpuStatusMilli ?? 0) > (s0.cpuStatusMilli ?? 0)
            : (s.memStatusBytes ?? 0) > (s0.memStatusBytes ?? 0);
          if (up && patchSec === undefined) patchSec = dt;
          if (guest && guestSec === undefined) guestSec = dt;
        }
        await new Promise((r) => setTimeout(r, 500));
      }
      await load;
      steps.push({ kind, patchSec, guestSec });
      log.info("step", { i, kind, patchSec, guestSec });
    }
  }

  const fmt = (v: number | undefined) => v === undefined ? "-" : `${v.toFixed(1)} s`;
  const rows = flags.kinds.map((kind) => {
    const mine = steps.filter((s) => s.kind === kind);
    const patch = mine.flatMap((s) => s.patchSec === undefined ? [] : [s.patchSec]);
    const guest = mine.flatMap((s) => s.guestSec === undefined ? [] : [s.guestSec]);
    return [
      kind,
      String(mine.length),
      String(mine.length - guest.length),
      fmt(percentile(patch, 50)),
      fmt(percentile(patch, 95)),
      fmt(percentile(guest, 50)),
      fmt(percentile(guest, 95)),
    ];
  });
  Deno.stdout.writeSync(
    new TextEncoder().encode(
      textTable(
        ["LOAD", "STEPS", "MISSED", "PATCH p50", "PATCH p95", "GUEST p50", "GUEST p95"],
        rows,
      ) + "\n",
    ),
  );
}

if (import.meta.main) await main();
