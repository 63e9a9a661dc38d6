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
import { GUEST_REPORT_PREFIX } from "../../scripts/guest/guest_files.ts";

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
  /** True while the process has not exited. */
  alive(): boolean;
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
  let exited = false;
  child.status.then(() => exited = true);
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
    alive: () => !exited,
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

/** The busybox test guest image (built by scripts/guest, imported by prepareCluster). */
export const GUEST_IMAGE = Deno.env.get("NEONVM_TEST_GUEST_IMAGE") ??
  "localhost/neonvm-ts/test-guest:dev";

/** A VirtualMachine manifest of the test guest (0.25 of max 1 CPU, 1 of max 4 slots of 1 GiB). */
export function vmManifest(
  name: string,
  extraSpec: Record<string, unknown> = {},
  guest: Record<string, unknown> = {},
): string {
  return JSON.stringify({
    apiVersion: "vm.neon.tech/v1",
    kind: "VirtualMachine",
    metadata: { name },
    spec: {
      terminationGracePeriodSeconds: 2,
      enableSSH: false,
      guest: {
        cpus: { min: "250m", max: 1, use: "250m" },
        memorySlots: { min: 1, max: 4, use: 1 },
        memorySlotSize: "1Gi",
        rootDisk: { image: GUEST_IMAGE, imagePullPolicy: "Never" },
        ...guest,
      },
      ...extraSpec,
    },
  });
}

/**
 * Deletes a test namespace with its VMs and migrations. Why the finalizers are dropped: the
 * suite's controller has already stopped by now, so nothing else would release them and the
 * namespace would stay Terminating for ever; pods go with their owners.
 */
export async function deleteNamespace(env: ClusterEnv, ns: string): Promise<void> {
  for (const kind of ["virtualmachinemigrations.vm.neon.tech", "virtualmachines.vm.neon.tech"]) {
    await kubectl(env, ["delete", kind, "--all", "-n", ns, "--wait=false"]);
    const names = await kubectl(env, ["-n", ns, "get", kind, "-o", "name"]);
    for (const name of names.stdout.split(/\s+/).filter((x) => x !== "")) {
      await kubectl(env, [
        "-n",
        ns,
        "patch",
        name,
        "--type=merge",
        "-p",
        JSON.stringify({ metadata: { finalizers: null } }),
      ]);
    }
  }
  await kubectl(env, ["delete", "namespace", ns, "--wait=false"]);
}

/** Runs `fn` in a fresh namespace that is deleted (with its VMs) afterwards. */
export async function withNamespace(
  env: ClusterEnv,
  prefix: string,
  fn: (ns: string) => Promise<void>,
): Promise<void> {
  const ns = `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
  await ok(env, ["create", "namespace", ns]);
  try {
    await fn(ns);
  } finally {
    await deleteNamespace(env, ns);
  }
}

/** The VM, its pods and the namespace's events as text, for timeout messages. */
export async function describeVm(env: ClusterEnv, ns: string, vm: string): Promise<string> {
  const a = await kubectl(env, ["-n", ns, "get", "virtualmachines.vm.neon.tech", vm, "-o", "yaml"]);
  const b = await kubectl(env, ["-n", ns, "describe", "pods"]);
  const c = await kubectl(env, ["-n", ns, "get", "events", "--sort-by=.lastTimestamp"]);
  return `${a.stdout}\n${b.stdout}\n${c.stdout}`;
}

// deno-lint-ignore no-explicit-any
type Json = any;

/** Polls the VM until `pred` holds; returns it. */
export async function waitVm(
  env: ClusterEnv,
  ns: string,
  name: string,
  what: string,
  pred: (vm: Json) => boolean,
  timeoutMs = 300_000,
): Promise<Json> {
  return await waitFor(what, timeoutMs, async () => {
    const vm = await getVm(env, ns, name);
    return vm !== undefined && pred(vm) ? vm : undefined;
  }, () => describeVm(env, ns, name));
}

/** What the test guest's console reporter last printed (online vCPUs, MemTotal). */
export interface GuestReport {
  /** Online vCPUs. */
  readonly cpusOnline: number;
  /** MemTotal, KiB. */
  readonly memTotalKib: number;
}

const REPORT_RE = new RegExp(
  `${GUEST_REPORT_PREFIX} cpus_online=(\\d+) \\S+ memtotal_kib=(\\d+)`,
  "g",
);

/** The guest's latest console report, read from the runner pod's log (the serial console). */
export async function guestReport(
  env: ClusterEnv,
  ns: string,
  pod: string,
): Promise<GuestReport | undefined> {
  const r = await kubectl(env, ["-n", ns, "logs", pod, "-c", "neonvm-runner"]);
  if (r.code !== 0) return undefined;
  const all = [...r.stdout.matchAll(REPORT_RE)];
  const m = all.at(-1);
  return m ? { cpusOnline: Number(m[1]), memTotalKib: Number(m[2]) } : undefined;
}

/** Waits until the guest's report satisfies `pred`; returns it. */
export function waitGuest(
  env: ClusterEnv,
  ns: string,
  pod: string,
  what: string,
  pred: (r: GuestReport) => boolean,
  timeoutMs = 120_000,
): Promise<GuestReport> {
  return waitFor(what, timeoutMs, async () => {
    const r = await guestReport(env, ns, pod);
    return r !== undefined && pred(r) ? r : undefined;
  }, async () => JSON.stringify(await guestReport(env, ns, pod)));
}

/**
 * Host PIDs whose command line contains `needle` (the cluster's nodes run on this host, so their
 * containers' processes are visible here).
 */
export async function hostPids(needle: string): Promise<number[]> {
  const pids: number[] = [];
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmd = (await Deno.readTextFile(`/proc/${e.name}/cmdline`)).replaceAll("\0", " ");
      if (cmd.includes(needle)) pids.push(Number(e.name));
    } catch {
      // Exited while we looked.
    }
  }
  return pids;
}

/** PIDs of the QEMU process of a runner pod (its kernel command line names the pod). */
export function qemuPids(pod: string): Promise<number[]> {
  return hostPids(`hostname=vm-${pod} `).then(async (pids) => {
    const out: number[] = [];
    for (const p of pids) {
      const exe = await Deno.readLink(`/proc/${p}/exe`).catch(() => "");
      if (exe.includes("qemu-system")) out.push(p);
    }
    return out;
  });
}

/** The parent PID of a process. */
export async function parentPid(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  // Fields after the command (which may hold spaces) in parentheses: state, ppid, ...
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}
