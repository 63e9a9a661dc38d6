/**
 * Faults through the controller on the real local cluster, one VM: (1) QMP becomes unreachable
 * (the runner pod's network namespace rejects TCP 20183) — the controller records a `QmpFailed`
 * Warning Event and `Degraded=True`, keeps running, and neither restarts the VM nor replaces its
 * pod; when QMP is back, `Degraded` is cleared again. (2) The runner *process* is killed (SIGKILL
 * from the host; the pod is left alone) — the VM is replaced exactly once (`restartCount: 1`) and
 * is `Running` again with exactly one condition, `Available=True`, and the old QEMU is gone.
 * Needs `deno task cluster:up`, root (nsenter, iptables, kill) and the test-guest image.
 * @module
 */
import assert from "node:assert/strict";
import { type ClusterEnv, kubectl, requireCluster } from "../harness/cluster.ts";
import {
  ok,
  parentPid,
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

const QMP_PORT = "20183";

async function run(cmd: string[]): Promise<void> {
  const out = await new Deno.Command(cmd[0]!, { args: cmd.slice(1), stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** The host PID of the runner of `pod`: the nearest ancestor of its QEMU running the runner. */
async function runnerPid(pod: string): Promise<number> {
  const qemu = await waitFor(
    `QEMU of ${pod}`,
    30_000,
    async () => (await qemuPids(pod))[0],
  );
  let pid = qemu;
  for (let i = 0; i < 4; i++) {
    pid = await parentPid(pid);
    const cmd = await Deno.readTextFile(`/proc/${pid}/cmdline`);
    if (cmd.includes("runner/main.ts")) return pid;
  }
  throw new Error(`no runner process above QEMU ${qemu} of ${pod}`);
}

/** Adds (`-I`) or deletes (`-D`) the rule rejecting QMP from outside the pod. */
function qmpRule(pid: number, op: "-I" | "-D"): Promise<void> {
  return run([
    "nsenter",
    "-t",
    String(pid),
    "-n",
    "iptables",
    op,
    "INPUT",
    "-i",
    "eth0",
    "-p",
    "tcp",
    "--dport",
    QMP_PORT,
    "-j",
    "REJECT",
    "--reject-with",
    "tcp-reset",
  ]);
}

async function vmEvents(env: ClusterEnv, ns: string, vm: string): Promise<Json[]> {
  const out = await ok(env, [
    "-n",
    ns,
    "get",
    "events",
    "--field-selector",
    `involvedObject.name=${vm}`,
    "-o",
    "json",
  ]);
  return JSON.parse(out).items;
}

Deno.test({
  name: "controller: a QMP failure is an Event and Degraded; a killed runner is replaced once",
  ignore: Deno.uid() !== 0,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const env = await requireCluster();
    await prepareCluster(env);
    await withNamespace(env, "nvts-fault", async (ns) => {
      await using ctl = startController(env, ns);
      await ok(env, ["-n", ns, "apply", "-f", "-"], vmManifest("vm1"));
      const running = await waitVm(
        env,
        ns,
        "vm1",
        "vm1 Running and probed",
        (vm) => vm.status?.phase === "Running" && vm.status?.cpus !== undefined,
      );
      const pod1 = running.status.podName as string;
      const pid1 = await runnerPid(pod1);

      // (1) QMP unreachable: an Event and Degraded, no restart, the controller keeps running.
      await qmpRule(pid1, "-I");
      try {
        const degraded = await waitVm(
          env,
          ns,
          "vm1",
          "vm1 Degraded by the QMP failure",
          (vm) =>
            vm.status?.conditions?.some((c: Json) =>
              c.type === "Degraded" && c.status === "True" && c.reason === "QmpFailed"
            ),
          60_000,
        );
        assert.equal(degraded.status.phase, "Running");
        assert.equal(degraded.status.podName, pod1);
        assert.equal(degraded.status.restartCount, 0);
        const warned = await waitFor("QmpFailed Warning event", 30_000, async () => {
          const evs = await vmEvents(env, ns, "vm1");
          return evs.find((e) => e.type === "Warning" && e.reason === "QmpFailed");
        });
        assert.match(warned.message, /QMP/);
        // Several failed rounds later (5 s apart): still the same pod, no restart, no crash.
        await new Promise((r) => setTimeout(r, 12_000));
        assert.ok(ctl.alive(), "the controller did not exit");
        assert.deepEqual(await runnerPods(env, ns, "vm1"), [pod1]);
        const still = await waitVm(env, ns, "vm1", "vm1", () => true);
        assert.equal(still.status.restartCount, 0);
        assert.equal(still.status.phase, "Running");
      } finally {
        await qmpRule(pid1, "-D");
      }
      const recovered = await waitVm(
        env,
        ns,
        "vm1",
        "vm1 healthy again",
        (vm) => vm.status?.conditions?.length === 1,
        60_000,
      );
      assert.deepEqual(
        recovered.status.conditions.map((c: Json) => [c.type, c.status]),
        [["Available", "True"]],
      );
      assert.ok(
        (await vmEvents(env, ns, "vm1")).some((e) => e.reason === "Recovered"),
        "a Recovered event",
      );

      // (2) Kill the runner process (not the pod): replaced exactly once.
      const qemu1 = await qemuPids(pod1);
      await run(["kill", "-KILL", String(pid1)]);
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
      assert.deepEqual(
        restarted.status.conditions.map((c: Json) => [c.type, c.status]),
        [["Available", "True"]],
      );
      const pod2 = restarted.status.podName as string;
      await waitFor(
        "the old pod gone",
        60_000,
        async () => {
          const pods = await runnerPods(env, ns, "vm1");
          return pods.length === 1 && pods[0] === pod2 ? true : undefined;
        },
        async () => (await kubectl(env, ["-n", ns, "get", "pods", "-o", "wide"])).stdout,
      );
      assert.deepEqual(
        (await qemuPids(pod1)).filter((p) => qemu1.includes(p)),
        [],
        "the killed runner's QEMU is gone",
      );
      assert.equal((await qemuPids(pod2)).length, 1);
      assert.ok(ctl.alive());
    });
  },
});
