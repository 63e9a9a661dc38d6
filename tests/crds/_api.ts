/**
 * An apiserver for the CRD suite: the running local cluster when `requireCluster()` finds one
 * (or when NEONVM_CRDS_TEST_TARGET=cluster), otherwise a bare etcd + kube-apiserver started here
 * from the cached upstream binaries (NEONVM_K8S_BIN_DIR, default
 * /var/cache/neonvm-ts/bin/k8s-v1.36.3-etcd-v3.6.16), on loopback ports, in a temporary
 * directory, torn down by `close()`. Set NEONVM_CRDS_TEST_TARGET=bare to force the bare one.
 * Test support only: never imported by src/.
 * @module
 */
import {
  type ClusterEnv,
  kubectl,
  type KubectlResult,
  requireCluster,
} from "../harness/cluster.ts";

/** Where the suite talks to. */
export interface TestApi extends AsyncDisposable {
  /** `cluster` (the shared local cluster) or `bare` (our own apiserver). */
  kind: "cluster" | "bare";
  /** Runs kubectl against it; never throws on a non-zero exit. */
  kubectl(args: string[], stdin?: string): Promise<KubectlResult>;
  /** Stops what this module started (nothing for the shared cluster). */
  close(): Promise<void>;
}

const DEFAULT_BIN_DIR = "/var/cache/neonvm-ts/bin/k8s-v1.36.3-etcd-v3.6.16";

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function run(cmd: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
  if (out.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

async function startBare(binDir: string): Promise<TestApi> {
  for (const b of ["etcd", "kube-apiserver", "kubectl"]) {
    try {
      await Deno.stat(`${binDir}/${b}`);
    } catch (err) {
      throw new Error(
        `No local cluster and no ${binDir}/${b} for a bare apiserver ` +
          "(run `deno task cluster:up`, or build the binaries with scripts/build_k8s_bins.sh)",
        { cause: err },
      );
    }
  }
  const dir = await Deno.makeTempDir({ prefix: "neonvm-crds-" });
  const etcdPort = freePort();
  const peerPort = freePort();
  const apiPort = freePort();
  const token = crypto.randomUUID();
  await run("openssl", ["genrsa", "-out", `${dir}/sa.key`, "2048"]);
  await run("openssl", ["rsa", "-in", `${dir}/sa.key`, "-pubout", "-out", `${dir}/sa.pub`]);
  await Deno.writeTextFile(`${dir}/tokens.csv`, `${token},admin,admin,"system:masters"\n`);
  const kubeconfig = `${dir}/kubeconfig`;
  await Deno.writeTextFile(
    kubeconfig,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{
        name: "bare",
        cluster: { server: `https://127.0.0.1:${apiPort}`, "insecure-skip-tls-verify": true },
      }],
      users: [{ name: "admin", user: { token } }],
      contexts: [{ name: "bare", context: { cluster: "bare", user: "admin" } }],
      "current-context": "bare",
    }),
  );
  const logs = await Deno.open(`${dir}/procs.log`, { create: true, write: true, append: true });
  const spawn = (cmd: string, args: string[]) =>
    new Deno.Command(cmd, { args, stdin: "null", stdout: "null", stderr: "piped" }).spawn();
  const procs: Deno.ChildProcess[] = [];
  const pipeLogs = (p: Deno.ChildProcess) => {
    // Keep stderr drained so the process never blocks on a full pipe; kept for post-mortems.
    p.stderr.pipeTo(logs.writable, { preventClose: true }).catch(() => {});
  };
  const etcd = spawn(`${binDir}/etcd`, [
    "--name=default",
    `--data-dir=${dir}/etcd`,
    `--listen-client-urls=http://127.0.0.1:${etcdPort}`,
    `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
    `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
    `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
    `--initial-cluster=default=http://127.0.0.1:${peerPort}`,
    "--unsafe-no-fsync",
    "--log-level=warn",
  ]);
  procs.push(etcd);
  pipeLogs(etcd);
  const api = spawn(`${binDir}/kube-apiserver`, [
    `--etcd-servers=http://127.0.0.1:${etcdPort}`,
    "--bind-address=127.0.0.1",
    "--advertise-address=127.0.0.1",
    `--secure-port=${apiPort}`,
    `--cert-dir=${dir}/certs`,
    "--service-account-issuer=https://kubernetes.default.svc",
    `--service-account-key-file=${dir}/sa.pub`,
    `--service-account-signing-key-file=${dir}/sa.key`,
    "--service-cluster-ip-range=10.0.0.0/24",
    `--token-auth-file=${dir}/tokens.csv`,
    "--authorization-mode=AlwaysAllow",
    "--enable-priority-and-fairness=false",
    "--watch-cache=false",
    "--profiling=false",
    "--v=0",
  ]);
  procs.push(api);
  pipeLogs(api);
  const env = {
    kubectl: `${binDir}/kubectl`,
    kubeconfig,
  } as ClusterEnv;
  const close = async () => {
    for (const p of procs.reverse()) {
      try {
        p.kill("SIGTERM");
      } catch {
        // Already exited: nothing to stop.
      }
      await p.status;
    }
    logs.close();
    await Deno.remove(dir, { recursive: true });
  };
  const deadline = Date.now() + 120_000;
  for (;;) {
    const r = await kubectl(env, ["get", "--raw=/readyz", "--request-timeout=5s"]);
    if (r.code === 0) break;
    if (Date.now() > deadline) {
      const log = await Deno.readTextFile(`${dir}/procs.log`).catch(() => "");
      await close();
      throw new Error(
        `bare kube-apiserver not ready after 120 s: ${r.stderr}\n${log.slice(-3000)}`,
      );
    }
    await new Promise((res) => setTimeout(res, 1000));
  }
  return {
    kind: "bare",
    kubectl: (args, stdin) => kubectl(env, args, stdin === undefined ? {} : { stdin }),
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Returns the apiserver to test against (see the module comment). */
export async function testApi(): Promise<TestApi> {
  const target = Deno.env.get("NEONVM_CRDS_TEST_TARGET");
  const binDir = Deno.env.get("NEONVM_K8S_BIN_DIR") ?? DEFAULT_BIN_DIR;
  if (target !== "bare") {
    try {
      const env = await requireCluster();
      const close = () => Promise.resolve();
      return {
        kind: "cluster",
        kubectl: (args, stdin) => kubectl(env, args, stdin === undefined ? {} : { stdin }),
        close,
        [Symbol.asyncDispose]: close,
      };
    } catch (err) {
      if (target === "cluster") throw err;
    }
  }
  return await startBare(binDir);
}
