/**
 * KWOK fake nodes (`cluster:up --fake-nodes M`): they are Ready and tainted, a pod that tolerates
 * the taint and selects them is bound by the stock scheduler and reported Running with a pod IP
 * from the fake node's CIDR, and deleting it completes. Ignored when the cluster has no fake
 * nodes. Uses its own namespace and deletes it.
 * @module
 */
import assert from "node:assert/strict";
import { kubectl, requireCluster } from "../harness/cluster.ts";
import {
  ClusterStateSchema,
  controlPlanePaths,
  DEFAULT_CLUSTER_DIR,
} from "../../scripts/cluster/layout.ts";

async function recordedFakeNodes(): Promise<number> {
  const dir = Deno.env.get("NEONVM_CLUSTER_DIR") ?? DEFAULT_CLUSTER_DIR;
  try {
    const text = await Deno.readTextFile(controlPlanePaths(dir).stateFile);
    return ClusterStateSchema.parse(JSON.parse(text)).fakeNodes?.names.length ?? 0;
  } catch {
    // No cluster: nothing to test here; the other suites report the missing cluster.
    return 0;
  }
}

Deno.test({
  name: "a pod tolerating the fake-node taint runs (as far as KWOK says) on a fake node",
  ignore: (await recordedFakeNodes()) === 0,
  fn: async () => {
    const env = await requireCluster();
    const ok = async (args: string[], stdin?: string) => {
      const r = await kubectl(env, args, stdin === undefined ? {} : { stdin });
      assert.equal(r.code, 0, `kubectl ${args.join(" ")}: ${r.stderr}`);
      return r.stdout;
    };
    const taints = JSON.parse(
      await ok(["get", "node", env.fakeNodes[0]!, "-o", "jsonpath={.spec.taints}"]),
    ) as { key: string; effect: string }[];
    assert.ok(taints.some((t) => t.key === "kwok.x-k8s.io/node" && t.effect === "NoSchedule"));
    const ns = `nvts-test-${crypto.randomUUID().slice(0, 8)}`;
    await ok(["create", "namespace", ns]);
    try {
      const pod = {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "f1" },
        spec: {
          nodeSelector: { type: "kwok" },
          tolerations: [{ key: "kwok.x-k8s.io/node", operator: "Exists", effect: "NoSchedule" }],
          containers: [{
            name: "main",
            image: "localhost/does-not-exist:never-pulled",
            resources: { requests: { cpu: "1", memory: "1Gi" } },
          }],
        },
      };
      await ok(["-n", ns, "apply", "-f", "-"], JSON.stringify(pod));
      await ok([
        "-n",
        ns,
        "wait",
        "pod/f1",
        "--for=jsonpath={.status.phase}=Running",
        "--timeout=60s",
      ]);
      const got = JSON.parse(await ok(["-n", ns, "get", "pod", "f1", "-o", "json"])) as {
        spec: { nodeName: string };
        status: { podIP: string };
      };
      assert.ok(env.fakeNodes.includes(got.spec.nodeName), `bound to ${got.spec.nodeName}`);
      const j = Number(got.spec.nodeName.replace("fake-", ""));
      assert.ok(got.status.podIP.startsWith(`10.214.${100 + j}.`), got.status.podIP);
      await ok(["-n", ns, "delete", "pod", "f1", "--timeout=60s"]);
    } finally {
      await kubectl(env, ["delete", "namespace", ns, "--wait=false"]);
    }
  },
});
