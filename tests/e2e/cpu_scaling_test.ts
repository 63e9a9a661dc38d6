/**
 * End to end on the local cluster with the deployed stack: a CPU-heavy pgbench against an
 * autoscaling Postgres VM (0.25–2 vCPU) scales it to its maximum, the guest gets the vCPUs, and
 * after the load stops it returns to its minimum; pgbench's connections never break and the VM
 * never restarts. Under TCG (no KVM) an idle guest keeps a load average of about 1.5–2, so the VM
 * runs with TCG_SCALING_CONFIG and "back down" means at most 1 vCPU instead of the 0.25 minimum.
 * Needs `deno task cluster:up`; bounded to about 25 minutes (TCG guests are slow).
 * @module
 */
import assert from "node:assert/strict";
import { getVm, snapshotOf, waitUntil } from "../../scripts/demo/cluster.ts";
import { pgbenchInit, pgbenchRun } from "../../scripts/demo/load.ts";
import { DEMO_NAMESPACE } from "../../scripts/demo/manifests.ts";
import { log, settle, TCG, withVm } from "./_e2e.ts";

Deno.test({
  name: "e2e: CPU load scales a Postgres VM to 2 vCPU and back down, connections intact",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withVm("e2e-cpu", {}, async (c, vm) => {
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
      const bench = await pgbenchRun(vm.target, vm.ip, { clients: 6, seconds: 240 });
      watching = false;
      await watch;
      log.info("pgbench finished", { ...bench, maxSpec, maxGuest });
      assert.equal(bench.code, 0, `pgbench failed: ${bench.tail}`);
      assert.equal(bench.connectionBroken, false, bench.tail);
      assert.equal(bench.failed, 0);
      assert.equal(maxSpec, 2000, `agent never asked for 2 vCPU (max ${maxSpec}m)`);
      assert.equal(maxGuest, 2000, `guest never had 2 vCPU (max ${maxGuest}m)`);
      // Load average decays over minutes: allow 8 minutes to come back down.
      const low = TCG ? 1000 : 250;
      const after = await waitUntil(log, `back to ${low}m vCPU`, async () => {
        const s = snapshotOf((await getVm(c, DEMO_NAMESPACE, vm.name))!);
        return s.cpuUseMilli <= low && (s.cpuStatusMilli ?? 0) <= low ? s : undefined;
      }, { timeoutMs: 8 * 60_000, intervalMs: 2000 });
      assert.equal(after.phase, "Running");
      assert.equal(after.restartCount, before.restartCount, "the VM restarted");
    });
  },
});
