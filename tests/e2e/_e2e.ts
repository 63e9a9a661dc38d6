/**
 * Shared set-up for the end-to-end suites: needs `deno task cluster:up`; makes sure the images
 * are on the nodes and the stack (CRDs + deploy/local) is deployed, then gives each test its own
 * autoscaling Postgres VM (unique name in the `neonvm-demo` namespace) and deletes it afterwards.
 * Also an audit of node reservations (nothing over-committed). Must not stop the cluster.
 * @module
 */
import { requireCluster } from "../harness/cluster.ts";
import {
  type DemoCluster,
  getVm,
  kubectl,
  loadCluster,
  snapshotOf,
  type VmSnapshot,
  waitUntil,
} from "../../scripts/demo/cluster.ts";
import {
  deleteVm,
  deployStack,
  ensureImages,
  type StartedVm,
  startVm,
} from "../../scripts/demo/stack.ts";
import {
  DEMO_NAMESPACE,
  TCG_SCALING_CONFIG,
  type VmOptions,
} from "../../scripts/demo/manifests.ts";
import { createLogger, type Logger } from "../../src/lib/log.ts";
import { NodeSchema, PodSchema } from "../../src/lib/k8s/core_types.ts";
import { VirtualMachineSchema } from "../../src/api/virtualmachine.ts";
import { nodeRows } from "../../scripts/demo/rows.ts";
import type { NodeRow } from "../../scripts/demo/render.ts";
import { z } from "zod";

/**
 * True unless NEONVM_E2E_KVM=1: runner pods on the local cluster get no /dev/kvm (no device
 * plugin), so guests run under TCG and idle guests keep a load average.
 */
export const TCG: boolean = Deno.env.get("NEONVM_E2E_KVM") !== "1";

/** Logger for e2e progress (stderr JSON lines). */
export const log: Logger = createLogger("e2e", { level: "info" });

/**
 * VM options of the CPU-driven suites: 0.25–2 vCPU with memory fixed at 1 GiB. Why fixed: the agent
 * scales in compute units (0.25 vCPU + 1 GiB), so every CPU step would also plug or unplug 1 GiB
 * of virtio-mem; under TCG that is 10–20 s of kernel work per GiB in a guest kworker, which
 * raises the load average the agent scales CPU by, and an idle VM oscillated between 4 and 5 GiB
 * every ~16 s instead of settling (measured with tests/e2e/_guest_shell.ts: kworker 25–60 % and
 * `virtio_mem: requested size` flipping in dmesg). Memory scaling has its own suite.
 */
export const CPU_ONLY: Omit<VmOptions, "name"> = { memMinSlots: 1, memMaxSlots: 1 };

let ready: Promise<DemoCluster> | undefined;

/** The cluster with the stack deployed (done once per test process). */
export function stack(): Promise<DemoCluster> {
  ready ??= (async () => {
    await requireCluster();
    const c = await loadCluster();
    await ensureImages(log, c);
    await deployStack(log, c);
    return c;
  })();
  return ready;
}

/**
 * Runs `fn` with a fresh VM named `<prefix>-<random>`; always deletes the VM and its load pod.
 * Under TCG the VM's scaling config is TCG_SCALING_CONFIG with `opts.scalingConfig` on top.
 */
export async function withVm(
  prefix: string,
  opts: Omit<VmOptions, "name">,
  fn: (c: DemoCluster, vm: StartedVm) => Promise<void>,
): Promise<void> {
  const c = await stack();
  const name = `${prefix}-${crypto.randomUUID().slice(0, 6)}`;
  try {
    const scalingConfig = { ...(TCG ? TCG_SCALING_CONFIG : {}), ...opts.scalingConfig };
    const vm = await startVm(log, c, {
      ...opts,
      ...(Object.keys(scalingConfig).length > 0 ? { scalingConfig } : {}),
      name,
      // The guest's data directory is initialised at image build time: Postgres answers about a
      // minute after the VM is created under TCG, so 6 minutes means something is wrong.
      bootTimeoutMs: 6 * 60_000,
    });
    await fn(c, vm);
  } finally {
    await deleteVm(c, name);
  }
}

/**
 * Waits until the VM's spec CPU and memory have not changed for `stillMs` (boot is load under
 * TCG, so a new VM first grows and then comes back down), or at most `timeoutMs` (an emulated
 * guest's load average is noisy and it may never hold still); returns the latest snapshot.
 */
export async function settle(
  c: DemoCluster,
  name: string,
  stillMs = 30_000,
  timeoutMs = 3 * 60_000,
): Promise<VmSnapshot> {
  let key = "";
  let since = performance.now();
  let latest: VmSnapshot | undefined;
  const t0 = performance.now();
  return await waitUntil(log, `${name} settled`, async () => {
    const v = await getVm(c, DEMO_NAMESPACE, name);
    if (!v) return undefined;
    const s = snapshotOf(v);
    latest = s;
    const k = `${s.cpuUseMilli}/${s.memUseBytes}/${s.cpuStatusMilli}/${s.memStatusBytes}`;
    if (k !== key) [key, since] = [k, performance.now()];
    const still = performance.now() - since >= stillMs;
    return still || performance.now() - t0 >= timeoutMs ? latest : undefined;
  }, { timeoutMs: timeoutMs + 60_000, intervalMs: 2000, describe: () => key });
}

const ListOf = <T extends z.ZodType>(item: T) => z.object({ items: z.array(item) });

/** Node reservations as the scheduler counts them, read from the cluster now. */
export async function reservations(c: DemoCluster): Promise<NodeRow[]> {
  const get = async (what: string) => {
    const r = await kubectl(c, ["get", what, "-A", "-o", "json", "--request-timeout=10s"], {
      timeoutMs: 15_000,
    });
    if (r.code !== 0) throw new Error(`get ${what}: ${r.stderr}`);
    return JSON.parse(r.stdout) as unknown;
  };
  const [nodes, pods, vms] = await Promise.all([
    get("nodes"),
    get("pods"),
    get("virtualmachines.vm.neon.tech"),
  ]);
  return nodeRows(
    ListOf(NodeSchema).parse(nodes).items,
    ListOf(PodSchema).parse(pods).items,
    ListOf(VirtualMachineSchema).parse(vms).items,
  );
}

/** Audits reservations every second until stopped; records every over-commit seen. */
export class ReservationAudit {
  /** Over-commits seen (node, what, when). */
  readonly violations: string[] = [];
  /** Audits done. */
  rounds = 0;
  #stop = false;
  #done: Promise<void>;

  /** Starts auditing. */
  constructor(private readonly c: DemoCluster, private readonly nodes?: readonly string[]) {
    this.#done = this.#loop();
  }

  async #loop(): Promise<void> {
    while (!this.#stop) {
      const t0 = performance.now();
      try {
        for (const n of await reservations(this.c)) {
          if (this.nodes && !this.nodes.includes(n.node)) continue;
          if (n.cpuReservedMilli > n.cpuTotalMilli || n.memReservedBytes > n.memTotalBytes) {
            this.violations.push(
              `${
                new Date().toISOString()
              } ${n.node}: cpu ${n.cpuReservedMilli}/${n.cpuTotalMilli}m, mem ${n.memReservedBytes}/${n.memTotalBytes}`,
            );
          }
        }
        this.rounds++;
      } catch {
        // A failed read is not an audit; the next round retries.
      }
      const wait = 1000 - (performance.now() - t0);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
  }

  /** Stops and waits for the loop. */
  async stop(): Promise<void> {
    this.#stop = true;
    await this.#done;
  }
}
