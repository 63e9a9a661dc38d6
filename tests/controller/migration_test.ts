/**
 * Live migration through the controller on the real local cluster (two nodes or more): a Running
 * VM, a VirtualMachineMigration for it, the target runner pod on the other node, QEMU migrating
 * over TCP 20187, then the VM Running on the target pod and the source pod deleted. Skipped with
 * fewer than two nodes. Uses its own namespace.
 * @module
 */
import assert from "node:assert/strict";
import { kubectl, requireCluster } from "../harness/cluster.ts";
import {
  deleteNamespace,
  getVm,
  ok,
  prepareCluster,
  runnerPods,
  startController,
  waitFor,
} from "./_controller_process.ts";
import {
  ClusterStateSchema,
  controlPlanePaths,
  DEFAULT_CLUSTER_DIR,
} from "../../scripts/cluster/layout.ts";

const GUEST_IMAGE = Deno.env.get("NEONVM_TEST_GUEST_IMAGE") ??
  "localhost/neonvm-ts/test-guest:dev";

async function nodeCount(): Promise<number> {
  const dir = Deno.env.get("NEONVM_CLUSTER_DIR") ?? DEFAULT_CLUSTER_DIR;
  try {
    return ClusterStateSchema.parse(
      JSON.parse(await Deno.readTextFile(controlPlanePaths(dir).stateFile)),
    ).nodes.length;
  } catch {
    return 0; // No cluster: requireCluster reports it in the single-node suites.
  }
}

// deno-lint-ignore no-explicit-any
type Json = any;

Deno.test({
  name: "controller: live migration moves a running VM to another node",
  ignore: (await nodeCount()) < 2,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const env = await requireCluster();
    await prepareCluster(env);
    const ns = `nvts-mig-${crypto.randomUUID().slice(0, 8)}`;
    await ok(env, ["create", "namespace", ns]);
    try {
      await using _ctl = startController(env, ns);
      await ok(
        env,
        ["-n", ns, "apply", "-f", "-"],
        JSON.stringify({
          apiVersion: "vm.neon.tech/v1",
          kind: "VirtualMachine",
          metadata: { name: "vm1" },
          spec: {
            terminationGracePeriodSeconds: 2,
            enableSSH: false,
            guest: {
              cpus: { min: "250m", max: 1, use: "250m" },
              memorySlots: { min: 1, max: 2, use: 1 },
              memorySlotSize: "1Gi",
              rootDisk: { image: GUEST_IMAGE, imagePullPolicy: "Never" },
            },
          },
        }),
      );
      const running: Json = await waitFor("vm1 Running", 300_000, async () => {
        const vm: Json = await getVm(env, ns, "vm1");
        return vm?.status?.phase === "Running" && vm.status.cpus !== undefined ? vm : undefined;
      });
      const sourcePod = running.status.podName as string;
      const sourceNode = running.status.node as string;
      await ok(
        env,
        ["-n", ns, "apply", "-f", "-"],
        JSON.stringify({
          apiVersion: "vm.neon.tech/v1",
          kind: "VirtualMachineMigration",
          metadata: { name: "mig1" },
          spec: { vmName: "vm1" },
        }),
      );
      const t0 = Date.now();
      const done: Json = await waitFor("migration finished", 300_000, async () => {
        const r = await kubectl(env, [
          "-n",
          ns,
          "get",
          "virtualmachinemigrations.vm.neon.tech",
          "mig1",
          "-o",
          "json",
        ]);
        if (r.code !== 0) return undefined;
        const m = JSON.parse(r.stdout);
        return m.status?.phase === "Succeeded" || m.status?.phase === "Failed" ? m : undefined;
      }, async () => (await kubectl(env, ["-n", ns, "get", "events"])).stdout);
      const tookMs = Date.now() - t0;
      assert.equal(done.status.phase, "Succeeded", JSON.stringify(done.status));
      const after: Json = await waitFor("vm1 Running on the target", 60_000, async () => {
        const vm: Json = await getVm(env, ns, "vm1");
        return vm?.status?.phase === "Running" && vm.status.podName === done.status.targetPodName
          ? vm
          : undefined;
      });
      // The hand-over writes podName and node together: the first status naming the target pod
      // already names the target's node.
      assert.equal(after.status.node, done.status.targetNode);
      assert.notEqual(after.status.node, sourceNode);
      await waitFor(
        "source pod deleted",
        60_000,
        async () => (await runnerPods(env, ns, "vm1")).includes(sourcePod) ? undefined : true,
      );
      Deno.stdout.writeSync(
        new TextEncoder().encode(`migration ${sourceNode} -> ${after.status.node}: ${tookMs} ms\n`),
      );
    } finally {
      await deleteNamespace(env, ns);
    }
  },
});
