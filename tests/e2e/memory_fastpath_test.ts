/**
 * End to end: a query that holds more memory than a 1 GiB Postgres VM can give it is met by the
 * vm-monitor's fast path (an UpscaleRequest to the agent, seen in the agent's log) and the VM
 * grows before the guest runs out of memory: the query finishes, the VM never restarts. Needs
 * `deno task cluster:up`; bounded to about 15 minutes. Bounds 0.25–2 vCPU, 1–4 GiB.
 * @module
 */
import assert from "node:assert/strict";
import {
  agentPodsOn,
  getVm,
  kubectl,
  memoryPressure,
  snapshotOf,
} from "../../scripts/demo/cluster.ts";
import { DEMO_NAMESPACE } from "../../scripts/demo/manifests.ts";
import { GiB } from "../../src/api/quantity.ts";
import { log, settle, withVm } from "./_e2e.ts";

/** Agent log lines about `vm` since `sinceIso`, from the agent on `node`. */
async function agentLog(
  c: Parameters<typeof kubectl>[0],
  node: string,
  vm: string,
  sinceIso: string,
): Promise<string[]> {
  const lines: string[] = [];
  for (const p of await agentPodsOn(c, node)) {
    const r = await kubectl(c, ["logs", "-n", "kube-system", p, `--since-time=${sinceIso}`]);
    lines.push(...r.stdout.split("\n").filter((l) => l.includes(`${DEMO_NAMESPACE}/${vm}`)));
  }
  return lines;
}

Deno.test({
  name: "e2e: a memory hog is met by the monitor fast path before the guest runs out of memory",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withVm("e2e-mem", {
      memMaxSlots: 4,
      // The agent's periodic path (metrics every 5 s, scale when used > 75 % of memory) reacts
      // to the hog first under TCG, where building 700 MiB takes a minute (measured: the VM grew
      // to 3 GiB, query ok, no UpscaleRequest). A usage target of 0.95 leaves a sudden rise to
      // the monitor, whose threshold is 85 % of its cgroup's usable memory. (withVm adds the TCG
      // tuning underneath.)
      scalingConfig: { memoryUsageFractionTarget: 0.95 },
    }, async (c, vm) => {
      // An idle VM under TCG may not hold still (TCG_SCALING_CONFIG says why): wait 90 s at most.
      const before = await settle(c, vm.name, 30_000, 90_000);
      const since = new Date().toISOString();
      let maxMem = 0;
      let watching = true;
      const watch = (async () => {
        while (watching) {
          const v = await getVm(c, DEMO_NAMESPACE, vm.name).catch(() => undefined);
          if (v) maxMem = Math.max(maxMem, snapshotOf(v).memStatusBytes ?? 0);
          await new Promise((r) => setTimeout(r, 1000));
        }
      })();
      // Per GiB the VM has, one backend holding 700 MiB, more than a 1 GiB guest can give its
      // Postgres cgroup. The string is filled by repeat() (memcpy): a string_agg hog took a
      // minute of emulated CPU, the load average rose, and the agent's periodic path scaled CPU
      // and memory together (compute units) before the monitor saw any pressure. A sudden rise
      // is what the fast path is for. At most 2 backends (peak ~1.6 GiB) keep the demand below
      // the 4 GiB maximum.
      const parallel = Math.min(2, Math.max(1, Math.round(before.memUseBytes / GiB)));
      const hog = await memoryPressure(vm.target, vm.ip, 700, parallel, 10);
      watching = false;
      await watch;
      const after = snapshotOf((await getVm(c, DEMO_NAMESPACE, vm.name))!);
      const lines = await agentLog(c, after.node ?? "", vm.name, since);
      const requested = lines.filter((l) => l.includes("monitor requested upscale")).length;
      log.info("memory hog finished", { hog, maxMem, requested, patches: lines.length });
      assert.ok(hog.ok, `the query failed (out of memory?): ${hog.output}`);
      assert.ok(
        maxMem > (before.memStatusBytes ?? 0),
        `the VM never grew (max ${maxMem} bytes)`,
      );
      assert.ok(requested > 0, "the monitor never asked the agent for memory (fast path)");
      assert.equal(after.restartCount, before.restartCount, "the VM restarted");
      assert.equal(after.phase, "Running");
    });
  },
});
