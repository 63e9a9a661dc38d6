/**
 * In-place pod resize (D4) on the local cluster: patching a running pod's cpu and memory through
 * the `resize` subresource changes its status and the container's cgroup v1 limits without a
 * restart. Uses its own namespace and deletes it. Must not change anything outside it.
 * @module
 */
import assert from "node:assert/strict";
import { kubectl, requireCluster } from "../harness/cluster.ts";
import { RUNTIME_IMAGE } from "../../scripts/cluster/layout.ts";

Deno.test("in-place resize updates pod status and the container's cgroup limits", async () => {
  const env = await requireCluster();
  const ns = `nvts-test-${crypto.randomUUID().slice(0, 8)}`;
  const ok = async (args: string[], stdin?: string) => {
    const r = await kubectl(env, args, stdin === undefined ? {} : { stdin });
    assert.equal(r.code, 0, `kubectl ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };
  await ok(["create", "namespace", ns]);
  try {
    const pod = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "r1" },
      spec: {
        terminationGracePeriodSeconds: 1,
        containers: [{
          name: "main",
          image: RUNTIME_IMAGE,
          imagePullPolicy: "Never",
          command: ["sleep", "3600"],
          resizePolicy: [
            { resourceName: "cpu", restartPolicy: "NotRequired" },
            { resourceName: "memory", restartPolicy: "NotRequired" },
          ],
          resources: {
            requests: { cpu: "100m", memory: "64Mi" },
            limits: { cpu: "200m", memory: "128Mi" },
          },
        }],
      },
    };
    await ok(["-n", ns, "apply", "-f", "-"], JSON.stringify(pod));
    await ok(["-n", ns, "wait", "pod/r1", "--for=condition=Ready", "--timeout=120s"]);
    const limits = async () =>
      (await ok([
        "-n",
        ns,
        "exec",
        "r1",
        "--",
        "cat",
        "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
      ])).trim().split("\n").map(Number);
    assert.deepEqual(await limits(), [20_000, 128 * 1024 * 1024]);
    await ok([
      "-n",
      ns,
      "patch",
      "pod",
      "r1",
      "--subresource",
      "resize",
      "-p",
      JSON.stringify({
        spec: {
          containers: [{
            name: "main",
            resources: {
              requests: { cpu: "150m", memory: "96Mi" },
              limits: { cpu: "300m", memory: "192Mi" },
            },
          }],
        },
      }),
    ]);
    await ok([
      "-n",
      ns,
      "wait",
      "pod/r1",
      "--for=jsonpath={.status.containerStatuses[0].resources.limits.cpu}=300m",
      "--timeout=60s",
    ]);
    assert.deepEqual(await limits(), [30_000, 192 * 1024 * 1024]);
    const restarts = await ok([
      "-n",
      ns,
      "get",
      "pod",
      "r1",
      "-o",
      "jsonpath={.status.containerStatuses[0].restartCount}",
    ]);
    assert.equal(restarts.trim(), "0");
  } finally {
    await kubectl(env, ["delete", "namespace", ns, "--wait=false"]);
  }
});
