/**
 * neonvm-controller benchmark: (1) the pure reconcile decision for a steady-state Running VM and
 * for a scaling round, in decisions per second; (2) whole reconciles through the real client
 * layer against the in-process fake API server (`FakeApiServer.handle`, no sockets) with a fake
 * guest: VMs driven from creation to Running (finalizer, defaulting, Pending, pod name, pod
 * creation, Running, first probe), then one steady-state round each, reporting reconciles/s, API
 * requests per VM and p50/p99 reconcile latency. The fake API applies patches in this process, so
 * these are upper bounds of what a real apiserver allows. Prints a table and the load average.
 * Run: `deno run -A bench/controller_bench.ts [--vms=200]`.
 * @module
 */
import { parseArgs } from "node:util";
import { GiB, MiB } from "../src/api/quantity.ts";
import { type VirtualMachine, VirtualMachineSchema } from "../src/api/virtualmachine.ts";
import { systemClock } from "../src/lib/clock.ts";
import { FakeApiServer } from "../src/lib/k8s/_fake_apiserver.ts";
import { KubeClient } from "../src/lib/k8s/client.ts";
import { PodSchema } from "../src/lib/k8s/core_types.ts";
import { MemoryEventSink } from "../src/lib/k8s/events.ts";
import { PODS, VIRTUAL_MACHINES } from "../src/lib/k8s/meta.ts";
import { createLogger } from "../src/lib/log.ts";
import { type GuestProbe, reconcileVm } from "../src/controller/core/reconcile.ts";
import type { PodView } from "../src/controller/core/runner_pod.ts";
import type { GuestIo } from "../src/controller/io/guest.ts";
import { VmReconciler } from "../src/controller/io/vm_reconciler.ts";
import { SETTINGS } from "../src/controller/core/_fixtures_test.ts";

const { values } = parseArgs({ args: Deno.args, options: { vms: { type: "string" } } });
const N = Number(values.vms ?? 200);

function out(line: string): void {
  Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
}
function loadavg(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  } catch {
    return "n/a";
  }
}
function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? 0;
}

function wireVm(name: string) {
  return {
    apiVersion: "vm.neon.tech/v1",
    kind: "VirtualMachine",
    metadata: { name, namespace: "default", labels: { "autoscaling.neon.tech/enabled": "true" } },
    spec: {
      guest: {
        cpus: { min: "250m", max: 4, use: "250m" },
        memorySlots: { min: 1, max: 8, use: 1 },
        memorySlotSize: "1Gi",
        rootDisk: { image: "img" },
      },
    },
  };
}

out(`controller benchmark — ${N} VMs, load average before: ${loadavg()}`);

// (1) Pure decisions.
const steady: VirtualMachine = VirtualMachineSchema.parse({
  ...wireVm("vm"),
  metadata: { ...wireVm("vm").metadata, finalizers: ["vm.neon.tech/finalizer"], uid: "u" },
  spec: { ...wireVm("vm").spec, cpuScalingMode: "QmpScaling" },
  status: {
    phase: "Running",
    podName: "vm-abcde",
    podIP: "10.0.0.1",
    node: "n",
    restartCount: 0,
    cpus: "250m",
    memorySize: "1Gi",
    conditions: [{
      type: "Available",
      status: "True",
      reason: "Reconciling",
      message: "ok",
      lastTransitionTime: "2026-01-01T00:00:00Z",
    }],
  },
});
const podView: PodView = {
  name: "vm-abcde",
  phase: "Running",
  hasContainerStatuses: true,
  runnerReady: true,
  podIP: "10.0.0.1",
  nodeName: "n",
  labels: {
    "autoscaling.neon.tech/enabled": "true",
    "app.kubernetes.io/name": "NeonVM",
    "vm.neon.tech/name": "vm",
  },
  annotations: {
    "kubectl.kubernetes.io/default-container": "neonvm-runner",
    "vm.neon.tech/usage": '{"cpu":"250m","memory":"1Gi"}',
    "vm.neon.tech/resources":
      '{"cpus":{"min":"250m","max":4,"use":"250m"},"memorySlots":{"min":1,"max":8,"use":1},"memorySlotSize":"1Gi"}',
  },
  ownerReferenceCount: 1,
  runnerRequests: { milliCpu: 350, memBytes: GiB + 256 * MiB },
};
const guestOk: GuestProbe = {
  ok: true,
  guest: { cgroupMilliCpu: 250, pluggedCpus: 1, memoryBytes: GiB, virtioMemRequestedBytes: 0 },
};
const scalingVm: VirtualMachine = {
  ...steady,
  spec: {
    ...steady.spec,
    guest: { ...steady.spec.guest, cpus: { ...steady.spec.guest.cpus, use: 2000 } },
  },
};
const rows: [string, string][] = [];
for (
  const [label, vm] of [["decision, steady Running", steady], [
    "decision, scaling round",
    scalingVm,
  ]] as const
) {
  const iters = 20_000;
  let actions = 0;
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) {
    actions +=
      reconcileVm(vm, { pod: podView, guest: guestOk, newPodSuffix: "x" }, 1e12 + i, SETTINGS)
        .actions.length;
  }
  const ms = performance.now() - t0;
  rows.push([
    label,
    `${Math.round(iters / (ms / 1000)).toLocaleString("en")} /s (${
      (ms * 1000 / iters).toFixed(1)
    } µs each, ${actions / iters} actions)`,
  ]);
}

// (2) Whole reconciles against the in-process fake API.
await using srv = new FakeApiServer();
using kube = new KubeClient({ server: "http://fake", fetch: (r) => srv.handle(r) });
const VMS_PATH = "/apis/vm.neon.tech/v1/virtualmachines";
for (let i = 0; i < N; i++) srv.seed(VMS_PATH, wireVm(`vm${i}`));
const guest: GuestIo = {
  probe: () => Promise.resolve(guestOk),
  plugCpu: () => Promise.resolve(),
  unplugCpu: () => Promise.resolve(),
  runnerCpuChange: () => Promise.resolve(),
  setVirtioMemSize: () => Promise.resolve(),
};
const pods = kube.resource(PODS, PodSchema);
const r = new VmReconciler({
  vms: kube.resource(VIRTUAL_MACHINES, VirtualMachineSchema),
  pods,
  cachedVm: (key) => {
    const [ns, name] = key.split("/");
    const raw = srv.object(VMS_PATH, ns, name!);
    return raw === undefined ? undefined : VirtualMachineSchema.parse(raw);
  },
  guest,
  events: new MemoryEventSink(),
  clock: systemClock,
  logger: createLogger("bench", { level: "error" }),
  settings: SETTINGS,
  random: Math.random,
});
const signal = new AbortController().signal;
const lat: number[] = [];
const reqBefore = srv.requests.length;
const t0 = performance.now();
let rounds = 0;
for (let i = 0; i < N; i++) {
  const key = `default/vm${i}`;
  for (let step = 0; step < 12; step++) {
    const s = performance.now();
    await r.reconcile(key, signal);
    lat.push(performance.now() - s);
    rounds++;
    const vm = srv.object(VMS_PATH, "default", `vm${i}`)!;
    const status = vm.status as { phase?: string; podName?: string; cpus?: unknown } | undefined;
    if (status?.phase === "Running" && status.cpus !== undefined) break;
    if (status?.podName && srv.object("/api/v1/pods", "default", status.podName)) {
      const pod = srv.object("/api/v1/pods", "default", status.podName)!;
      if ((pod.status as { phase?: string } | undefined)?.phase !== "Running") {
        await pods.patch(status.podName, {
          type: "merge",
          body: {
            status: {
              phase: "Running",
              podIP: `10.1.${i >> 8}.${i & 255}`,
              containerStatuses: [{ name: "neonvm-runner", ready: true }],
            },
          },
        }, { namespace: "default", subresource: "status" });
      }
    }
  }
}
const createMs = performance.now() - t0;
const createReqs = srv.requests.length - reqBefore;
const steadyLat: number[] = [];
const reqSteady = srv.requests.length;
const t1 = performance.now();
for (let i = 0; i < N; i++) {
  const s = performance.now();
  await r.reconcile(`default/vm${i}`, signal);
  steadyLat.push(performance.now() - s);
}
const steadyMs = performance.now() - t1;
rows.push([
  `create -> Running, ${N} VMs`,
  `${(createMs / 1000).toFixed(2)} s, ${(rounds / N).toFixed(1)} reconciles/VM, ${
    (createReqs / N).toFixed(1)
  } API requests/VM, p50 ${pct(lat, 0.5).toFixed(2)} ms, p99 ${pct(lat, 0.99).toFixed(2)} ms`,
]);
rows.push([
  `steady-state round, ${N} VMs`,
  `${Math.round(N / (steadyMs / 1000))} reconciles/s, ${
    ((srv.requests.length - reqSteady) / N).toFixed(1)
  } API requests/VM, p50 ${pct(steadyLat, 0.5).toFixed(2)} ms, p99 ${
    pct(steadyLat, 0.99).toFixed(2)
  } ms`,
]);

const w = Math.max(...rows.map(([a]) => a.length));
out(`${"measure".padEnd(w)} | result`);
out(`${"-".repeat(w)}-|-${"-".repeat(60)}`);
for (const [a, b] of rows) out(`${a.padEnd(w)} | ${b}`);
out(`load average after: ${loadavg()}`);
