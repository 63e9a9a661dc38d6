/**
 * Bringing up the demo stack on the local cluster, shared by `deno task demo`, tests/e2e and
 * bench/reaction_bench.ts: the images (built and imported into every node), the deployment (CRDs,
 * then deploy/local), an autoscaling Postgres VM with its load pod, and waiting until Postgres in
 * the guest answers. Every long step logs progress. Must not start or stop the cluster itself
 * except through `cluster:up` when asked.
 * @module
 */
import { DEFAULT_CACHE_DIR } from "../cluster/layout.ts";
import { exists } from "../cluster/exec.ts";
import type { Logger } from "../../src/lib/log.ts";
import {
  applyObjects,
  type DemoCluster,
  getVm,
  kubectl,
  kubectlOk,
  snapshotOf,
  waitUntil,
} from "./cluster.ts";
import {
  buildGuestKernelImage,
  buildKubeSchedulerImage,
  buildPgloadImage,
  GUEST_KERNEL_DIR,
  importIntoNodes,
  PG16_ROOTFS,
  PGLOAD_IMAGE,
} from "./images.ts";
import { type LoadTarget, postgresReady } from "./load.ts";
import { DEMO_NAMESPACE, demoVm, loadPod, type VmOptions } from "./manifests.ts";
import { buildPgGuest, importPgGuest, PG16_LAYOUT } from "./pg_guest.ts";

const REPO = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const out = new TextEncoder();

/** Prints a step headline on standard output. */
export function say(text: string): void {
  Deno.stdout.writeSync(out.encode(text + "\n"));
}

/** Runs `deno <args>` in the repository with inherited output; throws on failure. */
export async function runChild(log: Logger, step: string, args: string[]): Promise<void> {
  log.info(`${step}: starting`, { command: args.join(" ") });
  const t0 = performance.now();
  const st = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: REPO,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn().status;
  if (!st.success) throw new Error(`${step} failed (exit ${st.code}): deno ${args.join(" ")}`);
  log.info(`${step}: done`, { seconds: Math.round((performance.now() - t0) / 1000) });
}

/** Builds (when missing) and imports every image the demo needs into every node. */
export async function ensureImages(log: Logger, c: DemoCluster): Promise<void> {
  say(`==> images (nodes: ${c.nodeNames.join(", ")})`);
  const ctx = { cacheDir: DEFAULT_CACHE_DIR, logFile: `${c.dir}/logs/demo-images.log`, log };
  await importIntoNodes(ctx, await buildKubeSchedulerImage(ctx), c.dir, c.nodeCount);
  if (
    !(await exists(`${GUEST_KERNEL_DIR}/vmlinuz`)) ||
    !(await exists(`${GUEST_KERNEL_DIR}/initrd.img`))
  ) {
    await runChild(log, "guest kernel + initramfs", [
      "run",
      "-A",
      "scripts/guest/build_test_guest.ts",
    ]);
  }
  await importIntoNodes(ctx, await buildGuestKernelImage(ctx), c.dir, c.nodeCount);
  if (
    !(await exists(`${PG16_LAYOUT}/index.json`)) ||
    !(await exists(`${PG16_ROOTFS}/.neonvm-example-ready`))
  ) {
    say("==> Postgres root file system (vm-examples/pg16; the first build debootstraps, minutes)");
    await runChild(log, "pg16 example", ["run", "-A", "vm-examples/pg16/build.ts"]);
  }
  say("==> Postgres guest image (vm-builder with scripts/demo/pg-demo-spec.yaml)");
  await importPgGuest(log, c, await buildPgGuest(log));
  await importIntoNodes(ctx, await buildPgloadImage(ctx), c.dir, c.nodeCount);
}

/** Applies the CRDs and deploy/local and waits for the controller, scheduler and agents. */
export async function deployStack(log: Logger, c: DemoCluster): Promise<void> {
  say("==> deploy (CRDs, then kubectl apply -k deploy/local)");
  await kubectlOk(
    c,
    ["apply", "--server-side", "--force-conflicts", "-f", `${REPO}/deploy/crds/`],
    {
      timeoutMs: 60_000,
    },
  );
  await kubectlOk(c, ["wait", "--for=condition=Established", "--timeout=60s", "crd", "--all"], {
    timeoutMs: 70_000,
  });
  await kubectlOk(c, ["apply", "-k", `${REPO}/deploy/local`], { timeoutMs: 120_000 });
  await waitRollouts(log, c);
}

/** Waits until the controller, the scheduler and the agents are rolled out and ready. */
export async function waitRollouts(
  log: Logger,
  c: DemoCluster,
  timeoutMs = 600_000,
): Promise<void> {
  for (
    const [ns, what] of [
      ["neonvm-system", "deployment/neonvm-controller"],
      ["kube-system", "deployment/autoscale-scheduler"],
      ["kube-system", "daemonset/autoscaler-agent"],
    ] as const
  ) {
    await waitUntil(log, `rollout ${what}`, async () => {
      const r = await kubectl(c, ["rollout", "status", "-n", ns, what, "--timeout=20s"], {
        timeoutMs: 30_000,
      });
      return r.code === 0 ? true : undefined;
    }, { timeoutMs, intervalMs: 1000 });
  }
}

/** A started VM with its load pod. */
export interface StartedVm {
  /** Where to run load. */
  target: LoadTarget;
  /** The VM's pod IP (Postgres on 5432, metrics on 9100). */
  ip: string;
  /** VM name. */
  name: string;
}

/**
 * (Re)creates the VM `opts.name` and a load pod `<name>-load`, then waits until the VM runs and
 * Postgres in it answers. With `reuse`, an existing VM is kept.
 */
export async function startVm(
  log: Logger,
  c: DemoCluster,
  opts: VmOptions & { reuse?: boolean; bootTimeoutMs?: number },
): Promise<StartedVm> {
  const ns = opts.namespace ?? DEMO_NAMESPACE;
  const existing = await getVm(c, ns, opts.name);
  if (existing && !opts.reuse) {
    await kubectlOk(c, [
      "delete",
      "virtualmachines.vm.neon.tech",
      "-n",
      ns,
      opts.name,
      "--timeout=120s",
    ], { timeoutMs: 130_000 });
  }
  const podName = `${opts.name}-load`;
  await applyObjects(c, [demoVm(opts), loadPod(podName, PGLOAD_IMAGE, ns)]);
  const bootMs = opts.bootTimeoutMs ?? 15 * 60_000;
  let last = "";
  await waitUntil(log, `VM ${opts.name} Running`, async () => {
    const vm = await getVm(c, ns, opts.name);
    const s = vm ? snapshotOf(vm) : undefined;
    last = s ? `phase ${s.phase || "-"}, pod ${s.podName ?? "-"}, restarts ${s.restartCount}` : "";
    return s?.phase === "Running" && s.podIp ? s.podIp : undefined;
  }, { timeoutMs: bootMs, intervalMs: 2000, describe: () => last });
  await waitUntil(log, `pod ${podName} Ready`, async () => {
    const r = await kubectl(c, [
      "wait",
      "--for=condition=Ready",
      "-n",
      ns,
      `pod/${podName}`,
      "--timeout=20s",
    ], { timeoutMs: 30_000 });
    return r.code === 0 ? true : undefined;
  }, { timeoutMs: 300_000 });
  const target: LoadTarget = { cluster: c, namespace: ns, pod: podName };
  say(`==> waiting for Postgres in ${ns}/${opts.name}`);
  const ip = await waitUntil(log, `Postgres in ${opts.name} answers`, async () => {
    const vm = await getVm(c, ns, opts.name);
    const ip = vm?.status?.podIP;
    return ip && (await postgresReady(target, ip)) ? ip : undefined;
  }, { timeoutMs: bootMs, intervalMs: 3000 });
  return { target, ip, name: opts.name };
}

/** Deletes the VM and its load pod (without waiting for the guest to stop). */
export async function deleteVm(c: DemoCluster, name: string, ns = DEMO_NAMESPACE): Promise<void> {
  await kubectl(c, ["delete", "virtualmachines.vm.neon.tech", "-n", ns, name, "--wait=false"]);
  await kubectl(c, ["delete", "pod", "-n", ns, `${name}-load`, "--wait=false", "--grace-period=1"]);
}
