/**
 * The cluster CLI against the running cluster: `cluster:status --json` reports every process and
 * node as up and matches cluster.json; `cluster:env` prints exports that point at it. Read-only:
 * never runs `up` or `down` (other suites share the cluster).
 * @module
 */
import assert from "node:assert/strict";
import { requireCluster } from "../harness/cluster.ts";

const main = new URL("../../scripts/cluster/main.ts", import.meta.url).pathname;

async function cli(args: string[]): Promise<{ code: number; stdout: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", main, ...args],
    stdout: "piped",
    stderr: "null",
  }).output();
  return { code: out.code, stdout: new TextDecoder().decode(out.stdout) };
}

Deno.test("cluster:status --json reports the running cluster", async () => {
  const env = await requireCluster();
  const r = await cli(["status", "--json"]);
  assert.equal(r.code, 0, r.stdout);
  const s = JSON.parse(r.stdout) as {
    up: boolean;
    apiserverUrl: string;
    processes: { name: string; pid: number | null }[];
    nodes: { name: string; ip: string; ready: boolean }[];
  };
  assert.equal(s.up, true);
  assert.equal(s.apiserverUrl, env.apiserverUrl);
  for (const name of ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"]) {
    assert.ok(s.processes.find((p) => p.name === name)?.pid, `${name} not running`);
  }
  for (const n of env.nodes) {
    assert.ok(s.processes.find((p) => p.name === `${n.name}-kubelet`)?.pid, `${n.name} kubelet`);
    assert.ok(s.processes.find((p) => p.name === `${n.name}-containerd`)?.pid, `${n.name} ctr`);
    assert.deepEqual(s.nodes.find((x) => x.name === n.name)?.ready, true);
  }
});

Deno.test("cluster:env exports the kubeconfig, cluster dir and binaries", async () => {
  const env = await requireCluster();
  const r = await cli(["env"]);
  assert.equal(r.code, 0);
  assert.ok(r.stdout.includes(`export KUBECONFIG=${env.kubeconfig}\n`));
  assert.ok(r.stdout.includes(`export NEONVM_CLUSTER_DIR=${env.dir}\n`));
  assert.ok(r.stdout.includes(`export PATH=${env.binDir}:$PATH\n`));
});
