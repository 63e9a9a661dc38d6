/**
 * Test harness for suites that need the real local cluster started by `deno task cluster:up`:
 * finds it (via `<cluster dir>/cluster.json`), checks the apiserver answers, and runs kubectl
 * against it. Must not start or stop the cluster; it only reads what `cluster:up` wrote.
 * @module
 */
import {
  ClusterStateSchema,
  controlPlanePaths,
  DEFAULT_CLUSTER_DIR,
} from "../../scripts/cluster/layout.ts";

/** One node of the running cluster. */
export interface ClusterNode {
  /** Kubernetes Node name (`node-0`, `node-1`, ...). */
  name: string;
  /** Node address on the host bridge (10.213.0.(10+i)). */
  ip: string;
  /** The node's own containerd socket (use with `ctr -a <sock> -n k8s.io ...`). */
  containerdSocket: string;
  /** The node's pod CIDR (10.214.i.0/24). */
  podCidr: string;
}

/** Where the running local cluster is and how to talk to it. */
export interface ClusterEnv {
  /** Cluster directory (NEONVM_CLUSTER_DIR or /var/lib/neonvm-ts/cluster). */
  dir: string;
  /** Admin kubeconfig path (client certificate in group system:masters). */
  kubeconfig: string;
  /** Path of the kubectl binary matching the cluster version. */
  kubectl: string;
  /** Directory holding kube-apiserver, kube-scheduler, kubelet, kubectl, etcd, ... */
  binDir: string;
  /** apiserver URL, reachable from the host, the nodes and the pods. */
  apiserverUrl: string;
  /** The nodes, in index order. */
  nodes: ClusterNode[];
  /**
   * KWOK fake node names (`fake-<j>`, from `cluster:up --fake-nodes M`); empty when none. They
   * are tainted `kwok.x-k8s.io/node=fake:NoSchedule`; pods bound there are marked Running by
   * KWOK but never run.
   */
  fakeNodes: string[];
}

/** Result of a finished kubectl call. */
export interface KubectlResult {
  /** Exit code. */
  code: number;
  /** Standard output. */
  stdout: string;
  /** Standard error. */
  stderr: string;
}

const HINT = "start it with `deno task cluster:up` (add `--nodes 2` for multi-node suites)";

/** Returns the running cluster, or throws an error telling the user to run `cluster:up`. */
export async function requireCluster(): Promise<ClusterEnv> {
  const dir = Deno.env.get("NEONVM_CLUSTER_DIR") ?? DEFAULT_CLUSTER_DIR;
  const stateFile = controlPlanePaths(dir).stateFile;
  let text: string;
  try {
    text = await Deno.readTextFile(stateFile);
  } catch (err) {
    throw new Error(`The local cluster is not up (${stateFile} is missing): ${HINT}`, {
      cause: err,
    });
  }
  const parsed = ClusterStateSchema.safeParse(JSON.parse(text));
  if (!parsed.success) {
    throw new Error(`${stateFile} is not a valid cluster state file; re-run: ${HINT}`, {
      cause: parsed.error,
    });
  }
  const s = parsed.data;
  const env: ClusterEnv = {
    dir: s.dir,
    kubeconfig: s.kubeconfig,
    kubectl: `${s.binDir}/kubectl`,
    binDir: s.binDir,
    apiserverUrl: s.apiserverUrl,
    nodes: s.nodes.map((n) => ({ ...n })),
    fakeNodes: s.fakeNodes?.names ?? [],
  };
  const ready = await kubectl(env, ["get", "--raw=/readyz", "--request-timeout=5s"]);
  if (ready.code !== 0) {
    throw new Error(
      `The local cluster's apiserver ${s.apiserverUrl} does not answer (${
        ready.stderr.trim() || ready.stdout.trim()
      }): ${HINT}`,
    );
  }
  return env;
}

/** Runs `kubectl --kubeconfig <admin> ...args`; never throws on a non-zero exit. */
export async function kubectl(
  env: ClusterEnv,
  args: string[],
  opts: { stdin?: string } = {},
): Promise<KubectlResult> {
  const child = new Deno.Command(env.kubectl, {
    args: ["--kubeconfig", env.kubeconfig, ...args],
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Runs kubectl and throws, with its stderr, on a non-zero exit; returns stdout. */
export async function kubectlOk(env: ClusterEnv, args: string[], stdin?: string): Promise<string> {
  const r = await kubectl(env, args, stdin === undefined ? {} : { stdin });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout;
}

/** Polls `probe` every `intervalMs` until it returns a value; throws after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined>,
  describe?: () => Promise<string>,
  intervalMs = 500,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await probe();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(
    `Timed out after ${timeoutMs} ms waiting for ${what}${describe ? `\n${await describe()}` : ""}`,
  );
}
