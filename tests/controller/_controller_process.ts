/**
 * Test helper: runs our neonvm-controller as a host process against the local cluster (admin
 * kubeconfig, one namespace), applies the CRDs, and polls VirtualMachines through kubectl. Host
 * processes reach pod IPs over the cluster bridge, so QMP and the runner API work as in-cluster.
 * Must not change the cluster outside the test's namespace (CRDs are applied idempotently).
 * @module
 */
import { buildTestGuest, TEST_GUEST_IMAGE } from "../../scripts/guest/build_test_guest.ts";
import { importArchive, listImages } from "../../scripts/images/import.ts";
import {
  type ClusterEnv,
  kubectl,
  kubectlOk,
  waitFor as harnessWaitFor,
} from "../harness/cluster.ts";
import { RUNTIME_IMAGE } from "../../scripts/cluster/layout.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** Runs kubectl and throws on a non-zero exit. */
export const ok = kubectlOk;

/**
 * Makes the cluster ready for controller suites: the CRDs, and the test-guest image on every node
 * (built by scripts/guest if missing, imported where a node lacks it).
 */
export async function prepareCluster(env: ClusterEnv): Promise<void> {
  const guest = await buildTestGuest();
  for (const node of env.nodes) {
    if ((await listImages(node)).includes(TEST_GUEST_IMAGE)) continue;
    await importArchive(node, guest.imageArchivePath, `${env.dir}/logs/test-guest-import.log`);
  }
  await applyCrds(env);
}

/** Applies the NeonVM CRDs and waits until they are established. */
export async function applyCrds(env: ClusterEnv): Promise<void> {
  for (
    const f of ["vm.neon.tech_virtualmachines.yaml", "vm.neon.tech_virtualmachinemigrations.yaml"]
  ) {
    await ok(env, ["apply", "--server-side", "--force-conflicts", "-f", `${ROOT}deploy/crds/${f}`]);
  }
  await ok(env, [
    "wait",
    "--for=condition=Established",
    "crd/virtualmachines.vm.neon.tech",
    "--timeout=60s",
  ]);
  // kubectl's discovery cache may lag a freshly established CRD: wait until it resolves.
  await waitFor("VirtualMachine kind in discovery", 60_000, async () => {
    const r = await kubectl(env, ["get", "virtualmachines.vm.neon.tech", "-A"]);
    return r.code === 0 ? true : undefined;
  });
}

/** A running controller process; dispose to stop it (SIGTERM) and collect its log. */
export interface ControllerProcess extends AsyncDisposable {
  /** Lines the controller logged so far (JSON lines on stderr). */
  readonly log: string[];
}

/** Starts the controller for one namespace. */
export function startController(
  env: ClusterEnv,
  namespace: string,
  extraArgs: string[] = [],
): ControllerProcess {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${ROOT}src/controller/main.ts`,
      `--kubeconfig=${env.kubeconfig}`,
      `--runner-image=${Deno.env.get("NEONVM_RUNNER_IMAGE") ?? RUNTIME_IMAGE}`,
      `--namespace=${namespace}`,
      "--metrics-bind-address=127.0.0.1:0",
      "--health-probe-bind-address=127.0.0.1:0",
      "--disable-runner-cgroup",
      "--concurrency-limit=4",
      // The local cluster's nodes lack CAP_SYS_RESOURCE in their bounding set.
      `--runner-capabilities=${
        Deno.env.get("NEONVM_RUNNER_CAPABILITIES") ?? "NET_ADMIN,SYS_ADMIN"
      }`,
      ...extraArgs,
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const log: string[] = [];
  const reading = (async () => {
    const lines = child.stderr.pipeThrough(new TextDecoderStream());
    let buf = "";
    for await (const chunk of lines) {
      buf += chunk;
      let i: number;
      while ((i = buf.indexOf("\n")) >= 0) {
        log.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    }
  })();
  return {
    log,
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already exited.
      }
      await child.status;
      await reading;
    },
  };
}

/** Reads a VM as JSON (undefined when it does not exist). */
export async function getVm(
  env: ClusterEnv,
  ns: string,
  name: string,
): Promise<Record<string, unknown> | undefined> {
  const r = await kubectl(env, [
    "-n",
    ns,
    "get",
    "virtualmachines.vm.neon.tech",
    name,
    "-o",
    "json",
  ]);
  if (r.code !== 0) {
    if (/NotFound/.test(r.stderr)) return undefined;
    throw new Error(`kubectl get vm failed: ${r.stderr}`);
  }
  return JSON.parse(r.stdout);
}

/** Names of runner pods of a VM. */
export async function runnerPods(env: ClusterEnv, ns: string, vm: string): Promise<string[]> {
  const out = await ok(env, [
    "-n",
    ns,
    "get",
    "pods",
    "-l",
    `vm.neon.tech/name=${vm}`,
    "-o",
    "jsonpath={.items[*].metadata.name}",
  ]);
  return out.split(/\s+/).filter((x) => x !== "");
}

/** Polls `probe` every 1000 ms until it returns a value or `timeoutMs` passes. */
export function waitFor<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined>,
  describe?: () => Promise<string>,
): Promise<T> {
  return harnessWaitFor(what, timeoutMs, probe, describe, 1000);
}
