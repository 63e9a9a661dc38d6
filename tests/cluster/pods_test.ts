/**
 * Suites against the running local cluster (`deno task cluster:up`): a pod from the locally built
 * runtime image runs to completion with its logs readable; the image runs Deno offline with the
 * npm cache; a pod reaches the apiserver through the `kubernetes` Service with its ServiceAccount
 * token; with two or more nodes, pods spread over the nodes reach each other and the host reaches
 * them by pod IP. Each test uses its own namespace and deletes it. Must not change the cluster
 * outside that namespace.
 * @module
 */
import assert from "node:assert/strict";
import { type ClusterEnv, kubectl, requireCluster } from "../harness/cluster.ts";
import {
  ClusterStateSchema,
  controlPlanePaths,
  DEFAULT_CLUSTER_DIR,
  RUNTIME_IMAGE,
} from "../../scripts/cluster/layout.ts";

/** Node count from cluster.json, read without failing so multi-node tests can be skipped. */
async function recordedNodeCount(): Promise<number> {
  const dir = Deno.env.get("NEONVM_CLUSTER_DIR") ?? DEFAULT_CLUSTER_DIR;
  try {
    const s = ClusterStateSchema.parse(
      JSON.parse(await Deno.readTextFile(controlPlanePaths(dir).stateFile)),
    );
    return s.nodes.length;
  } catch {
    // No cluster: the single-node tests report it through requireCluster.
    return 0;
  }
}

const nodeCount = await recordedNodeCount();

async function ok(env: ClusterEnv, args: string[], stdin?: string): Promise<string> {
  const r = await kubectl(env, args, stdin === undefined ? {} : { stdin });
  assert.equal(r.code, 0, `kubectl ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout;
}

async function withNamespace(env: ClusterEnv, fn: (ns: string) => Promise<void>): Promise<void> {
  const ns = `nvts-test-${crypto.randomUUID().slice(0, 8)}`;
  await ok(env, ["create", "namespace", ns]);
  try {
    await fn(ns);
  } finally {
    await kubectl(env, ["delete", "namespace", ns, "--wait=false"]);
  }
}

function pod(name: string, command: string[], extra: Record<string, unknown> = {}) {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, labels: { app: name } },
    spec: {
      restartPolicy: "Never",
      terminationGracePeriodSeconds: 1,
      containers: [{
        name: "main",
        image: RUNTIME_IMAGE,
        imagePullPolicy: "Never",
        command,
      }],
      ...extra,
    },
  };
}

async function waitPhase(env: ClusterEnv, ns: string, name: string, phase: string): Promise<void> {
  const r = await kubectl(env, [
    "-n",
    ns,
    "wait",
    `pod/${name}`,
    `--for=jsonpath={.status.phase}=${phase}`,
    "--timeout=180s",
  ]);
  if (r.code !== 0) {
    const desc = await kubectl(env, ["-n", ns, "describe", "pod", name]);
    assert.fail(`pod ${name} did not reach ${phase}: ${r.stderr}\n${desc.stdout}`);
  }
}

Deno.test("a pod from the local runtime image runs to completion and its logs are readable", async () => {
  const env = await requireCluster();
  await withNamespace(env, async (ns) => {
    const marker = crypto.randomUUID();
    const script = [
      `echo "marker ${marker} on $(hostname)"`,
      "deno --version | head -1",
      // The npm cache in the image must make --cached-only work with no registry.
      `printf 'import { z } from "zod";\\nconsole.log(z.string().parse("zod-offline-ok"));\\n' > /app/src/_probe.ts`,
      "deno run --cached-only -A /app/src/_probe.ts",
      "test -s /vm/kernel/vmlinuz && echo kernel-present",
      "qemu-system-x86_64 --version | head -1",
    ].join(" && ");
    await ok(
      env,
      ["-n", ns, "apply", "-f", "-"],
      JSON.stringify(pod("hello", ["sh", "-c", script])),
    );
    await waitPhase(env, ns, "hello", "Succeeded");
    const logs = await ok(env, ["-n", ns, "logs", "hello"]);
    assert.match(logs, new RegExp(`marker ${marker} on hello`));
    assert.match(logs, /deno 2\.\d+\.\d+/);
    assert.match(logs, /zod-offline-ok/);
    assert.match(logs, /kernel-present/);
    assert.match(logs, /QEMU emulator version/);
  });
});

Deno.test("a pod reaches the apiserver through the kubernetes Service with its ServiceAccount", async () => {
  const env = await requireCluster();
  await withNamespace(env, async (ns) => {
    // Allow the namespace's default ServiceAccount to read its own namespace's pods.
    await ok(env, ["-n", ns, "create", "role", "pod-reader", "--verb=get,list", "--resource=pods"]);
    await ok(env, [
      "-n",
      ns,
      "create",
      "rolebinding",
      "pod-reader",
      "--role=pod-reader",
      `--serviceaccount=${ns}:default`,
    ]);
    const probe = [
      'const sa = "/var/run/secrets/kubernetes.io/serviceaccount";',
      "const token = (await Deno.readTextFile(`${sa}/token`)).trim();",
      "const ns = (await Deno.readTextFile(`${sa}/namespace`)).trim();",
      'const host = Deno.env.get("KUBERNETES_SERVICE_HOST"), port = Deno.env.get("KUBERNETES_SERVICE_PORT");',
      "const r = await fetch(`https://${host}:${port}/api/v1/namespaces/${ns}/pods`, { headers: { authorization: `Bearer ${token}` } });",
      "const body = await r.json();",
      'console.log("status", r.status, "pods", body.items.map((p) => p.metadata.name).join(","), "via", host);',
    ].join("\n");
    const script = `cat > /tmp/probe.ts <<'EOF'\n${probe}\nEOF\n` +
      "deno run --cached-only -A --cert /var/run/secrets/kubernetes.io/serviceaccount/ca.crt /tmp/probe.ts";
    await ok(
      env,
      ["-n", ns, "apply", "-f", "-"],
      JSON.stringify(pod("apiprobe", ["sh", "-c", script])),
    );
    await waitPhase(env, ns, "apiprobe", "Succeeded");
    const logs = await ok(env, ["-n", ns, "logs", "apiprobe"]);
    assert.match(logs, /status 200 pods .*apiprobe.* via 10\.215\.0\.1/);
  });
});

Deno.test({
  name: "pods on different nodes reach each other, and the host reaches them, by pod IP",
  ignore: nodeCount < 2,
  fn: async () => {
    const env = await requireCluster();
    await withNamespace(env, async (ns) => {
      const serve =
        "mkdir -p /www && hostname > /www/index.html && exec busybox httpd -f -p 8080 -h /www";
      // Required anti-affinity makes the stock scheduler spread the two pods over two nodes.
      const spread = {
        restartPolicy: "Always",
        affinity: {
          podAntiAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: [{
              labelSelector: { matchLabels: { role: "web" } },
              topologyKey: "kubernetes.io/hostname",
            }],
          },
        },
      };
      for (const name of ["web-a", "web-b"]) {
        const p = pod(name, ["sh", "-c", serve], spread);
        (p.metadata.labels as Record<string, string>).role = "web";
        // Ready only once httpd listens: a started container is not yet a serving one.
        Object.assign(p.spec.containers[0]!, {
          readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 },
        });
        await ok(env, ["-n", ns, "apply", "-f", "-"], JSON.stringify(p));
      }
      for (const name of ["web-a", "web-b"]) {
        await ok(env, ["-n", ns, "wait", `pod/${name}`, "--for=condition=Ready", "--timeout=180s"]);
      }
      const info = JSON.parse(await ok(env, ["-n", ns, "get", "pods", "-o", "json"])) as {
        items: {
          metadata: { name: string };
          spec: { nodeName: string };
          status: { podIP: string; containerStatuses: { containerID: string }[] };
        }[];
      };
      const byName = new Map(info.items.map((i) => [i.metadata.name, i]));
      const a = byName.get("web-a")!, b = byName.get("web-b")!;
      assert.notEqual(a.spec.nodeName, b.spec.nodeName, "pods landed on the same node");
      const nodeOf = (ip: string) =>
        env.nodes.find((n) => ip.startsWith(n.podCidr.replace(/0\/24$/, "")));
      assert.equal(nodeOf(a.status.podIP)?.name, a.spec.nodeName, "pod IP is from its node's CIDR");
      assert.equal(nodeOf(b.status.podIP)?.name, b.spec.nodeName, "pod IP is from its node's CIDR");
      for (const [from, to] of [[a, b], [b, a]] as const) {
        const got = await ok(env, [
          "-n",
          ns,
          "exec",
          from.metadata.name,
          "--",
          // Not `wget -T`: Debian's busybox wget segfaults with it.
          "timeout",
          "5",
          "busybox",
          "wget",
          "-qO-",
          `http://${to.status.podIP}:8080/`,
        ]);
        assert.equal(got.trim(), to.metadata.name);
      }
      for (const p of [a, b]) {
        const res = await fetch(`http://${p.status.podIP}:8080/`, {
          signal: AbortSignal.timeout(5000),
        });
        assert.equal((await res.text()).trim(), p.metadata.name);
      }
      // Each node runs its own containerd: a pod's container exists only in its node's.
      for (const p of [a, b]) {
        const id = (p.status.containerStatuses[0]?.containerID ?? "").replace("containerd://", "");
        assert.ok(id, `no container ID for ${p.metadata.name}`);
        for (const node of env.nodes) {
          const out = await new Deno.Command("ctr", {
            args: ["-a", node.containerdSocket, "-n", "k8s.io", "containers", "info", id],
            stdout: "null",
            stderr: "null",
          }).output();
          assert.equal(out.success, node.name === p.spec.nodeName, `${id} in ${node.name}`);
        }
      }
    });
  },
});
