/**
 * neonvm-controller on the real local cluster (real kubelet, containerd, runner pods, QEMU under
 * TCG): `--runs N` times (default 10) a fresh busybox test-guest VM is created and measured from
 * the create request to `status.phase: Running` and to the guest's first console report, then
 * resized +1 vCPU, +1 GiB and −1 GiB, each timed from the spec patch to `status` showing the new
 * size and to the guest itself seeing it (its console reporter, read by following the runner pod's
 * log), then deleted (timed until the VM object and then its runner pod are gone). A fresh VM per
 * run keeps QmpScaling safe: QEMU 7.2 under TCG crashes when a vCPU is hot-added after one was
 * removed, and here every vCPU add is the VM's first. VM status comes from a watch, not polling.
 * Prints p50/p95/min/max.
 * Runs the controller as a host process in its own namespace (as tests/controller do); hold the
 * cluster lock: `flock /tmp/neonvm-ts-cluster.lock deno run -A bench/controller_cluster_bench.ts`.
 * Options: `--runs N`, `--mode QmpScaling|SysfsScaling` (default QmpScaling).
 * Must not touch anything outside its namespace (CRDs are applied idempotently).
 * @module
 */
import { parseArgs } from "node:util";
import { GiB, KiB } from "../src/api/quantity.ts";
import {
  type VirtualMachine,
  VirtualMachineSchema,
  type VirtualMachineWire,
} from "../src/api/virtualmachine.ts";
import { KubeClient } from "../src/lib/k8s/client.ts";
import { loadClusterAccess } from "../src/lib/k8s/kubeconfig.ts";
import { PodSchema } from "../src/lib/k8s/core_types.ts";
import { PODS, VIRTUAL_MACHINES } from "../src/lib/k8s/meta.ts";
import { GUEST_REPORT_PREFIX } from "../scripts/guest/guest_files.ts";
import { kubectl, requireCluster } from "../tests/harness/cluster.ts";
import {
  ok,
  prepareCluster,
  startController,
  vmManifest,
} from "../tests/controller/_controller_process.ts";

const REPORT_RE = new RegExp(`${GUEST_REPORT_PREFIX} cpus_online=(\\d+) \\S+ memtotal_kib=(\\d+)`);

function out(line: string): void {
  Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
}
function uptime(): string {
  try {
    return `load ${Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ")}`;
  } catch {
    return "load n/a";
  }
}
function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

/** Latest value of something pushed to us, with waiters for a predicate. */
class Latest<T> {
  #value: T | undefined;
  #waiters: { pred: (v: T) => boolean; resolve: (v: T) => void }[] = [];
  set(v: T): void {
    this.#value = v;
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.pred(v)) return true;
      w.resolve(v);
      return false;
    });
  }
  get(): T | undefined {
    return this.#value;
  }
  /** Resolves with the time (performance.now) when `pred` first holds. */
  async when(what: string, pred: (v: T) => boolean, timeoutMs: number): Promise<number> {
    if (this.#value !== undefined && pred(this.#value)) return performance.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      return await new Promise<number>((resolve, reject) => {
        this.#waiters.push({ pred, resolve: () => resolve(performance.now()) });
        timer = setTimeout(
          () => reject(new Error(`timed out after ${timeoutMs} ms: ${what}`)),
          timeoutMs,
        );
      });
    } finally {
      clearTimeout(timer);
    }
  }
}

interface GuestReport {
  cpusOnline: number;
  memTotalKib: number;
}

/** The test guest at 1 of max 2 vCPUs and 1 of max 2 GiB, in CPU scaling `mode`. */
function manifest(name: string, mode: string): unknown {
  return JSON.parse(vmManifest(name, { cpuScalingMode: mode }, {
    cpus: { min: 1, max: 2, use: 1 },
    memorySlots: { min: 1, max: 2, use: 1 },
  }));
}

/** Follows a pod's log through the API and feeds guest reports to `sink` until `signal`. */
async function followGuest(
  kube: KubeClient,
  ns: string,
  pod: string,
  sink: Latest<GuestReport>,
  signal: AbortSignal,
): Promise<void> {
  const res = await kube.request(
    "GET",
    `/api/v1/namespaces/${ns}/pods/${pod}/log`,
    `follow the log of ${pod}`,
    { query: { follow: true, container: "neonvm-runner" }, stream: true, signal },
  );
  let buf = "";
  try {
    for await (const chunk of res.body!.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let i: number;
      while ((i = buf.indexOf("\n")) >= 0) {
        const m = REPORT_RE.exec(buf.slice(0, i));
        buf = buf.slice(i + 1);
        if (m) sink.set({ cpusOnline: Number(m[1]), memTotalKib: Number(m[2]) });
      }
    }
  } catch (error) {
    if (!signal.aborted) throw error;
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      runs: { type: "string", default: "10" },
      mode: { type: "string", default: "QmpScaling" },
    },
  });
  const runs = Math.max(1, Number(values.runs));
  const mode = values.mode === "SysfsScaling" ? "SysfsScaling" : "QmpScaling";
  const env = await requireCluster();
  out(`controller_cluster_bench: ${runs} runs, ${mode}, ${env.nodes.length} nodes; ${uptime()}`);
  await prepareCluster(env);
  const ns = `nvts-bench-${crypto.randomUUID().slice(0, 8)}`;
  await ok(env, ["create", "namespace", ns]);
  const access = await loadClusterAccess({ kubeconfigPath: env.kubeconfig });
  using kube = KubeClient.fromAccess(access);
  const vms = kube.resource(VIRTUAL_MACHINES, VirtualMachineSchema);
  const pods = kube.resource(PODS, PodSchema);
  const stop = new AbortController();
  const current = new Map<string, Latest<VirtualMachine | null>>();
  const vmState = (name: string) => {
    let l = current.get(name);
    if (!l) current.set(name, l = new Latest());
    return l;
  };
  // One watch for the namespace, restarted when the server ends it.
  const watching = (async () => {
    let rv: string | undefined;
    while (!stop.signal.aborted) {
      try {
        if (rv === undefined) rv = (await vms.list({ namespace: ns })).resourceVersion;
        for await (
          const ev of vms.watch({
            namespace: ns,
            resourceVersion: rv,
            timeoutSeconds: 600,
            signal: stop.signal,
          })
        ) {
          if (ev.type === "BOOKMARK") rv = ev.resourceVersion;
          else if (ev.type !== "INVALID") {
            rv = ev.object.metadata.resourceVersion ?? rv;
            vmState(ev.object.metadata.name ?? "").set(ev.type === "DELETED" ? null : ev.object);
          }
        }
      } catch (error) {
        if (stop.signal.aborted) return;
        out(`watch restarts: ${String(error)}`);
        rv = undefined;
      }
    }
  })();

  const samples: Record<string, number[]> = {};
  const rows = [
    "create -> Running",
    "create -> guest report",
    "+1 vCPU -> status",
    "+1 vCPU -> guest",
    "+1 GiB -> status",
    "+1 GiB -> guest",
    "-1 GiB -> status",
    "-1 GiB -> guest",
    "delete -> VM gone",
    "delete -> pod gone",
  ];
  for (const r of rows) samples[r] = [];
  const add = (row: string, ms: number) => samples[row]!.push(ms);
  const resize = async (
    name: string,
    label: string,
    body: Record<string, unknown>,
    statusOk: (vm: VirtualMachine) => boolean,
    guestOk: (g: GuestReport) => boolean,
    guest: Latest<GuestReport>,
  ) => {
    const t0 = performance.now();
    const seenStatus = vmState(name).when(
      `${name} ${label} in status`,
      (vm) => vm !== null && vm.status?.phase === "Running" && statusOk(vm),
      180_000,
    );
    const seenGuest = guest.when(`${name} ${label} in the guest`, guestOk, 300_000);
    await vms.patch(name, { type: "merge", body: { spec: { guest: body } } }, { namespace: ns });
    const [ts, tg] = await Promise.all([seenStatus, seenGuest]);
    add(`${label} -> status`, ts - t0);
    add(`${label} -> guest`, tg - t0);
    out(
      `  ${label}: status ${((ts - t0) / 1000).toFixed(1)} s, guest ${
        ((tg - t0) / 1000).toFixed(1)
      } s`,
    );
  };

  let failed: unknown;
  {
    await using _ctl = startController(env, ns);
    try {
      for (let i = 0; i < runs; i++) {
        const name = `bench${i}`;
        out(`run ${i + 1}/${runs} (${name}); ${uptime()}`);
        const state = vmState(name);
        const t0 = performance.now();
        await vms.create(manifest(name, mode) as VirtualMachineWire, { namespace: ns });
        const tRunning = await state.when(
          `${name} Running`,
          (vm) => vm?.status?.phase === "Running",
          300_000,
        );
        add("create -> Running", tRunning - t0);
        const podName = state.get()!.status!.podName!;
        const guest = new Latest<GuestReport>();
        const follow = new AbortController();
        const following = followGuest(kube, ns, podName, guest, follow.signal).catch((e) =>
          out(`log follow of ${podName} ended: ${String(e)}`)
        );
        try {
          const tGuest = await guest.when(`${name} boots`, (g) => g.cpusOnline === 1, 300_000);
          add("create -> guest report", tGuest - t0);
          // The first probe must have filled status before resizes are timed.
          await state.when(`${name} probed`, (vm) => vm?.status?.cpus === 1000, 60_000);
          out(
            `  Running ${((tRunning - t0) / 1000).toFixed(1)} s, guest report ${
              ((tGuest - t0) / 1000).toFixed(1)
            } s`,
          );
          const baseKib = guest.get()!.memTotalKib;
          await resize(
            name,
            "+1 vCPU",
            { cpus: { use: 2 } },
            (vm) => vm.status?.cpus === 2000,
            (g) => g.cpusOnline === 2,
            guest,
          );
          await resize(
            name,
            "+1 GiB",
            { memorySlots: { use: 2 } },
            (vm) => vm.status?.memorySize === 2 * GiB,
            (g) => g.memTotalKib - baseKib > 0.95 * GiB / KiB,
            guest,
          );
          await resize(
            name,
            "-1 GiB",
            { memorySlots: { use: 1 } },
            (vm) => vm.status?.memorySize === GiB,
            (g) => g.memTotalKib - baseKib < 0.05 * GiB / KiB,
            guest,
          );
        } finally {
          follow.abort();
          await following;
        }
        const tDel = performance.now();
        await vms.delete(name, { namespace: ns });
        const tGone = await state.when(`${name} gone`, (vm) => vm === null, 120_000);
        add("delete -> VM gone", tGone - tDel);
        // The pod (and with it QEMU) goes after the finalizer is released: poll for it.
        const podsGone = async () =>
          (await pods.list({ namespace: ns, labelSelector: `vm.neon.tech/name=${name}` })).items
            .length === 0;
        const deadline = performance.now() + 120_000;
        while (!(await podsGone())) {
          if (performance.now() > deadline) throw new Error(`pods of ${name} not gone`);
          await new Promise((r) => setTimeout(r, 200));
        }
        add("delete -> pod gone", performance.now() - tDel);
        out(
          `  delete: VM gone ${((tGone - tDel) / 1000).toFixed(1)} s, pod gone ${
            ((performance.now() - tDel) / 1000).toFixed(1)
          } s`,
        );
      }
    } catch (error) {
      failed = error;
      out(`controller_cluster_bench failed: ${String(error)}`);
      out((await kubectl(env, ["-n", ns, "get", "events", "--sort-by=.lastTimestamp"])).stdout);
    } finally {
      stop.abort();
      await watching;
      await kubectl(env, ["delete", "virtualmachines.vm.neon.tech", "--all", "-n", ns, "--wait"]);
      await kubectl(env, ["delete", "namespace", ns, "--wait=false"]);
    }
  }

  out(
    `\ncontroller_cluster_bench: ${mode}, QEMU TCG, 2-core machine; ${
      samples["create -> Running"]!.length
    } VMs; ${uptime()}`,
  );
  out("| measurement            | runs |  p50 s |  p95 s |  min s |  max s |");
  out("|------------------------|-----:|-------:|-------:|-------:|-------:|");
  for (const row of rows) {
    const s = [...samples[row]!].sort((a, b) => a - b);
    const f = (v: number) => (v / 1000).toFixed(2).padStart(6);
    out(
      `| ${row.padEnd(22)} | ${String(s.length).padStart(4)} | ${f(percentile(s, 50))} | ${
        f(percentile(s, 95))
      } | ${f(s[0] ?? NaN)} | ${f(s.at(-1) ?? NaN)} |`,
    );
  }
  if (failed !== undefined) Deno.exit(1);
}
