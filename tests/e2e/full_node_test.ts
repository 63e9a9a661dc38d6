/**
 * End to end: on a nearly full node, a VM under CPU load is granted increases only as far as they
 * fit, and nothing is ever over-committed. A filler pod (default-scheduler, pinned to the VM's
 * node) takes all but 1 CPU of the node; the VM then asks for its 2 vCPU maximum under pgbench.
 * Every second during the test the node reservations (VM approvals + other pods' requests, as the
 * scheduler counts them) are audited against allocatable. Memory is fixed
 * at 1 GiB (CPU_ONLY). Needs `deno task cluster:up`; bounded to about 12 minutes.
 * @module
 */
import assert from "node:assert/strict";
import { applyObjects, getVm, kubectl, snapshotOf } from "../../scripts/demo/cluster.ts";
import { pgbenchInit, pgbenchRun } from "../../scripts/demo/load.ts";
import { DEMO_NAMESPACE } from "../../scripts/demo/manifests.ts";
import { CPU_ONLY, log, ReservationAudit, reservations, settle, withVm } from "./_e2e.ts";

Deno.test({
  name: "e2e: on a nearly full node increases stop at what fits; never over-committed",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withVm("e2e-full", CPU_ONLY, async (c, vm) => {
      // pgbench -S needs its tables (the guest's database starts empty).
      await pgbenchInit(vm.target, vm.ip, 1);
      const s0 = await settle(c, vm.name);
      const node = s0.node!;
      const row = (await reservations(c)).find((r) => r.node === node)!;
      // Leave the VM room for 1.25 vCPU in all: it may grow to 1.25 but not to 2.
      const capMilli = 1250;
      const fillerMilli = row.cpuTotalMilli - row.cpuReservedMilli - (capMilli - s0.cpuUseMilli);
      assert.ok(fillerMilli > 0, `node ${node} already too full: ${JSON.stringify(row)}`);
      const filler = `${vm.name}-filler`;
      await applyObjects(c, [{
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: filler, namespace: DEMO_NAMESPACE },
        spec: {
          nodeName: node,
          terminationGracePeriodSeconds: 1,
          containers: [{
            name: "filler",
            image: "localhost/neonvm-ts/pause:dev",
            imagePullPolicy: "Never",
            resources: { requests: { cpu: `${fillerMilli}m`, memory: "16Mi" } },
          }],
        },
      }]);
      const audit = new ReservationAudit(c, [node]);
      try {
        const bench = await pgbenchRun(vm.target, vm.ip, { clients: 6, seconds: 150 });
        const s1 = snapshotOf((await getVm(c, DEMO_NAMESPACE, vm.name))!);
        log.info("full node run", {
          node,
          fillerMilli,
          cpuUse: s1.cpuUseMilli,
          approved: s1.cpuApprovedMilli,
          audits: audit.rounds,
          tps: bench.tps,
        });
        assert.equal(bench.code, 0, `pgbench failed: ${bench.tail}`);
        assert.equal(bench.connectionBroken, false, bench.tail);
        assert.ok(s1.cpuUseMilli > s0.cpuUseMilli, "the VM never grew at all");
        assert.ok(
          s1.cpuUseMilli <= capMilli,
          `the VM got ${s1.cpuUseMilli}m, more than fits (${capMilli}m)`,
        );
        assert.ok(audit.rounds >= 60, `too few audits (${audit.rounds})`);
      } finally {
        await audit.stop();
        await kubectl(c, ["delete", "pod", "-n", DEMO_NAMESPACE, filler, "--wait=false"]);
      }
      assert.deepEqual(audit.violations, []);
    });
  },
});
