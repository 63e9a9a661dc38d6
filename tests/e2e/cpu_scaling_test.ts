/**
 * End to end on the local cluster with the deployed stack: a CPU-heavy pgbench against an
 * autoscaling Postgres VM (0.25–2 vCPU) scales it to its maximum, the guest gets the vCPUs, and
 * after the load stops it returns to its minimum; pgbench's connections never break and the VM
 * never restarts. Memory is fixed at 1 GiB (CPU_ONLY in _e2e.ts says why). Needs `deno task
 * cluster:up`; 6 min 47 s measured (host load ~2), bounded to about 15.
 * @module
 */
import assert from "node:assert/strict";
import { getVm, snapshotOf, waitUntil } from "../../scripts/demo/cluster.ts";
import { pgbenchInit, pgbenchRun } from "../../scripts/demo/load.ts";
import { DEMO_NAMESPACE } from "../../scripts/demo/manifests.ts";
import { CPU_ONLY, log, settle, withVm } from "./_e2e.ts";

Deno.test({
  name: "e2e: CPU load scales a Postgres VM to 2 vCPU and back down, connections intact",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withVm("e2e-cpu", CPU_ONLY, async (c, vm) => {
      await pgbenchInit(vm.target, vm.ip, 1);
      const before = await settle(c, vm.name);
      assert.ok(before.cpuUseMilli < 2000, `already at the maximum before the load`);
      let maxSpec = 0;
      let maxGuest = 0;
      let watching = true;
      const watch = (async () => {
        while (watching) {
          const v = await getVm(c, DEMO_NAMESPACE, vm.name).catch(() => undefined);
          if (v) {
            const s = snapshotOf(v);
            maxSpec = Math.max(maxSpec, s.cpuUseMilli);
            maxGuest = Math.max(maxGuest, s.cpuStatusMilli ?? 0);
          }
          await new Promise((r) => setTimeout(r, 1000));
        }
      })();
      const bench = await pgbenchRun(vm.target, vm.ip, { clients: 6, seconds: 150 });
      watching = false;
      await watch;
      log.info("pgbench finished", { ...bench, maxSpec, maxGuest });
      assert.equal(bench.code, 0, `pgbench failed: ${bench.tail}`);
      assert.equal(bench.connectionBroken, false, bench.tail);
      assert.equal(bench.failed, 0);
      assert.equal(maxSpec, 2000, `agent never asked for 2 vCPU (max ${maxSpec}m)`);
      assert.equal(maxGuest, 2000, `guest never had 2 vCPU (max ${maxGuest}m)`);
      // The 1-minute load average decays from ~6 to below the 1-CU threshold in about 2–3 min.
      const low = 250;
      const after = await waitUntil(log, `back to ${low}m vCPU`, async () => {
        const s = snapshotOf((await getVm(c, DEMO_NAMESPACE, vm.name))!);
        return s.cpuUseMilli <= low && (s.cpuStatusMilli ?? 0) <= low ? s : undefined;
      }, { timeoutMs: 6 * 60_000, intervalMs: 2000 });
      assert.equal(after.phase, "Running");
      assert.equal(after.restartCount, before.restartCount, "the VM restarted");
    });
  },
});
