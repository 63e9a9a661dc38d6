/**
 * End to end: restarting the scheduler, the VM's agent and the controller (deleting their pods)
 * in the middle of a scale-up leaves the VM running (no restart, pgbench connections intact) and
 * the scaling resumes to the 2 vCPU maximum. Memory is fixed at 1 GiB (CPU_ONLY). Needs `deno task
 * cluster:up`; 5 min 49 s measured (host load ~2), bounded to about 12 minutes.
 * @module
 */
import assert from "node:assert/strict";
import { type DemoCluster, getVm, kubectlOk, snapshotOf } from "../../scripts/demo/cluster.ts";
import { pgbenchInit, pgbenchRun } from "../../scripts/demo/load.ts";
import { DEMO_NAMESPACE } from "../../scripts/demo/manifests.ts";
import { waitRollouts } from "../../scripts/demo/stack.ts";
import { CPU_ONLY, log, settle, withVm } from "./_e2e.ts";

async function deletePods(c: DemoCluster, ns: string, selector: string, node?: string) {
  const args = ["delete", "pod", "-n", ns, "-l", selector, "--wait=false"];
  if (node) args.push("--field-selector", `spec.nodeName=${node}`);
  await kubectlOk(c, args, { timeoutMs: 30_000 });
}

Deno.test({
  name:
    "e2e: scheduler, agent and controller restarts mid scale-up; VM keeps running, scaling resumes",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withVm("e2e-restart", CPU_ONLY, async (c, vm) => {
      // pgbench -S needs its tables (the guest's database starts empty).
      await pgbenchInit(vm.target, vm.ip, 1);
      const s0 = await settle(c, vm.name);
      let maxAfterRestarts = 0;
      let restartsDone = false;
      let stop = false;
      const watcher = (async () => {
        let restarted = false;
        while (!stop) {
          const v = await getVm(c, DEMO_NAMESPACE, vm.name).catch(() => undefined);
          const s = v ? snapshotOf(v) : undefined;
          if (s && !restarted && s.cpuUseMilli > s0.cpuUseMilli && s.cpuUseMilli < 2000) {
            // Mid scale-up: restart all three deciders at once.
            restarted = true;
            log.info("restarting scheduler, agent, controller", { cpuUse: s.cpuUseMilli });
            await deletePods(c, "kube-system", "name=autoscale-scheduler");
            await deletePods(c, "kube-system", "app.kubernetes.io/name=autoscaler-agent", s.node);
            await deletePods(c, "neonvm-system", "app.kubernetes.io/name=neonvm-controller");
            await waitRollouts(log, c, 300_000);
            restartsDone = true;
          } else if (s && restartsDone) {
            maxAfterRestarts = Math.max(maxAfterRestarts, s.cpuStatusMilli ?? 0);
          }
          await new Promise((r) => setTimeout(r, 1000));
        }
      })();
      const bench = await pgbenchRun(vm.target, vm.ip, { clients: 6, seconds: 240 });
      stop = true;
      await watcher;
      const s1 = snapshotOf((await getVm(c, DEMO_NAMESPACE, vm.name))!);
      log.info("restart run", { restartsDone, maxAfterRestarts, s1, tps: bench.tps });
      assert.ok(restartsDone, "the VM never started scaling up, so nothing was restarted");
      assert.equal(bench.connectionBroken, false, bench.tail);
      assert.equal(bench.code, 0, bench.tail);
      assert.equal(s1.phase, "Running");
      assert.equal(s1.restartCount, s0.restartCount, "the VM restarted");
      assert.equal(
        maxAfterRestarts,
        2000,
        `scaling did not resume to 2 vCPU (${maxAfterRestarts}m)`,
      );
    });
  },
});
