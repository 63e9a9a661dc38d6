/**
 * The neonvm-controller against the real local cluster with real runner pods and QEMU guests:
 * a 0.25 CPU / 1 GiB VM reaches Running with exactly one condition (Available=True) and the
 * status the guest really has; scaling to 1 CPU / 4 slots shows up in status; a killed runner is
 * replaced exactly once (restartCount 1); restartPolicy Never leaves the VM terminal with no new
 * pod; deleting the VM removes the pod and its QEMU process and releases the finalizer. Needs `deno task cluster:up`,
 * the runtime image and the test-guest image. Each test uses its own namespace.
 * @module
 */
import assert from "node:assert/strict";
import { requireCluster } from "../harness/cluster.ts";
import {
  getVm,
  ok,
  prepareCluster,
  qemuPids,
  runnerPods,
  startController,
  vmManifest,
  waitFor,
  waitVm,
  withNamespace,
} from "./_controller_process.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

Deno.test({
  name: "controller: VM runs, scales, restarts once, and is deleted cleanly",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const env = await requireCluster();
    await prepareCluster(env);
    await withNamespace(env, "nvts-ctl", async (ns) => {
      await using _ctl = startController(env, ns);
      await ok(env, ["-n", ns, "apply", "-f", "-"], vmManifest("vm1"));

      // Running with exactly one condition, and the size the guest really has.
      const running = await waitVm(
        env,
        ns,
        "vm1",
        "vm1 Running with status.cpus",
        (vm) => vm.status?.phase === "Running" && vm.status?.cpus !== undefined,
      );
      assert.equal(running.spec.cpuScalingMode, "QmpScaling");
      assert.deepEqual(running.metadata.finalizers, ["vm.neon.tech/finalizer"]);
      assert.equal(running.status.cpus, "250m");
      assert.equal(running.status.memorySize, "1Gi");
      assert.equal(running.status.restartCount, 0);
      assert.deepEqual(
        running.status.conditions.map((c: Json) => [c.type, c.status]),
        [["Available", "True"]],
      );
      const pod1 = running.status.podName as string;
      assert.deepEqual(await runnerPods(env, ns, "vm1"), [pod1]);

      // Scale to 1 CPU / 4 slots: status follows what the guest reports.
      await ok(env, [
        "-n",
        ns,
        "patch",
        "virtualmachines.vm.neon.tech",
        "vm1",
        "--type=merge",
        "-p",
        JSON.stringify({ spec: { guest: { cpus: { use: 1 }, memorySlots: { use: 4 } } } }),
      ]);
      const scaled = await waitVm(
        env,
        ns,
        "vm1",
        "vm1 scaled to 1 CPU / 4Gi",
        (vm) =>
          vm.status?.phase === "Running" && vm.status?.cpus === 1 &&
          vm.status?.memorySize === "4Gi",
        120_000,
      );
      assert.deepEqual(scaled.status.conditions.map((c: Json) => c.type), ["Available"]);
      // D4: the runner pod's requests followed the VM in place.
      const podJson = JSON.parse(await ok(env, ["-n", ns, "get", "pod", pod1, "-o", "json"]));
      const requests = podJson.spec.containers[0].resources.requests;
      assert.equal(requests.cpu, "1100m");

      // Delete the runner pod: replaced exactly once (killing the process: vm_faults_test.ts).
      await ok(env, ["-n", ns, "delete", "pod", pod1, "--grace-period=0", "--force"]);
      const restarted = await waitVm(
        env,
        ns,
        "vm1",
        "vm1 Running again on a new pod",
        (vm) =>
          vm.status?.phase === "Running" && vm.status?.podName !== pod1 &&
          vm.status?.cpus !== undefined,
      );
      assert.equal(restarted.status.restartCount, 1);
      assert.equal((await runnerPods(env, ns, "vm1")).length, 1);
      assert.deepEqual(
        restarted.status.conditions.map((c: Json) => [c.type, c.status]),
        [["Available", "True"]],
      );
      const pod2 = restarted.status.podName as string;
      assert.equal((await qemuPids(pod2)).length, 1, "one QEMU process runs the new pod's guest");

      // Delete: the pod goes, the finalizer is released, the VM disappears.
      await ok(env, ["-n", ns, "delete", "virtualmachines.vm.neon.tech", "vm1", "--wait=false"]);
      await waitFor(
        "vm1 gone",
        60_000,
        async () => (await getVm(env, ns, "vm1")) === undefined ? true : undefined,
      );
      await waitFor(
        "runner pods gone",
        60_000,
        async () => (await runnerPods(env, ns, "vm1")).length === 0 ? true : undefined,
      );
      await waitFor(
        "QEMU process gone",
        30_000,
        async () => (await qemuPids(pod2)).length === 0 ? true : undefined,
      );
    });
  },
});

Deno.test({
  name: "controller: restartPolicy Never leaves the VM terminal with no new pod",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const env = await requireCluster();
    await prepareCluster(env);
    await withNamespace(env, "nvts-ctl", async (ns) => {
      await using _ctl = startController(env, ns);
      await ok(env, ["-n", ns, "apply", "-f", "-"], vmManifest("vm2", { restartPolicy: "Never" }));
      const running = await waitVm(
        env,
        ns,
        "vm2",
        "vm2 Running",
        (vm) => vm.status?.phase === "Running",
      );
      const pod = running.status.podName as string;
      await ok(env, ["-n", ns, "delete", "pod", pod, "--grace-period=0", "--force"]);
      const done = await waitVm(
        env,
        ns,
        "vm2",
        "vm2 terminal",
        (vm) => vm.status?.phase === "Failed" || vm.status?.phase === "Succeeded",
        60_000,
      );
      assert.equal(done.status.restartCount, 0);
      // Give the controller time to (wrongly) restart it, then check nothing came back.
      await new Promise((r) => setTimeout(r, 10_000));
      const later: Json = await getVm(env, ns, "vm2");
      assert.ok(later?.status.phase === "Failed" || later?.status.phase === "Succeeded");
      assert.deepEqual(await runnerPods(env, ns, "vm2"), []);
      assert.equal(
        later?.status.conditions.find((c: Json) => c.type === "Degraded")?.status,
        "True",
      );
    });
  },
});
