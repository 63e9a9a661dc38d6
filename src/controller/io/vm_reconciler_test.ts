import assert from "node:assert/strict";
import { GiB } from "../../api/quantity.ts";
import { VirtualMachineSchema } from "../../api/virtualmachine.ts";
import { FakeClock } from "../../lib/clock.ts";
import { FakeApiServer } from "../../lib/k8s/_fake_apiserver.ts";
import { KubeClient } from "../../lib/k8s/client.ts";
import { PodSchema } from "../../lib/k8s/core_types.ts";
import { MemoryEventSink } from "../../lib/k8s/events.ts";
import { PODS, VIRTUAL_MACHINES } from "../../lib/k8s/meta.ts";
import { memoryLogger } from "../../lib/log.ts";
import { SETTINGS } from "../core/_fixtures_test.ts";
import type { GuestObservation, GuestProbe } from "../core/reconcile.ts";
import type { GuestIo, GuestTarget } from "./guest.ts";
import { VmReconciler } from "./vm_reconciler.ts";

const VMS = "/apis/vm.neon.tech/v1/virtualmachines";
const PODS_PATH = "/api/v1/pods";

/** A guest that applies scaling steps to its own state at once. */
class FakeGuest implements GuestIo {
  state: GuestObservation = {
    cgroupMilliCpu: 250,
    pluggedCpus: 1,
    memoryBytes: GiB,
    virtioMemRequestedBytes: 0,
  };
  calls: string[] = [];
  failPlug = false;
  probe(t: GuestTarget): Promise<GuestProbe> {
    this.calls.push(`probe ${t.podIP}:${t.qmpPort}`);
    return Promise.resolve({ ok: true, guest: { ...this.state } });
  }
  plugCpu(): Promise<void> {
    this.calls.push("plugCpu");
    if (this.failPlug) return Promise.reject(new Error("QMP connection refused"));
    this.state = { ...this.state, pluggedCpus: this.state.pluggedCpus + 1 };
    return Promise.resolve();
  }
  unplugCpu(): Promise<void> {
    this.calls.push("unplugCpu");
    this.state = { ...this.state, pluggedCpus: this.state.pluggedCpus - 1 };
    return Promise.resolve();
  }
  runnerCpuChange(_t: GuestTarget, milliCpu: number): Promise<void> {
    this.calls.push(`cpuChange ${milliCpu}`);
    this.state = { ...this.state, cgroupMilliCpu: milliCpu };
    return Promise.resolve();
  }
  setVirtioMemSize(_t: GuestTarget, bytes: number): Promise<void> {
    this.calls.push(`virtioMem ${bytes}`);
    this.state = { ...this.state, virtioMemRequestedBytes: bytes, memoryBytes: GiB + bytes };
    return Promise.resolve();
  }
}

function setup() {
  const srv = new FakeApiServer();
  const kube = new KubeClient({ server: "http://fake", fetch: (r) => srv.handle(r) });
  const clock = new FakeClock(Date.UTC(2026, 10, 27, 12));
  const guest = new FakeGuest();
  const events = new MemoryEventSink();
  const vms = kube.resource(VIRTUAL_MACHINES, VirtualMachineSchema);
  const pods = kube.resource(PODS, PodSchema);
  const r = new VmReconciler({
    vms,
    pods,
    cachedVm: (key) => {
      const [ns, name] = key.split("/");
      const raw = srv.object(VMS, ns, name!);
      return raw === undefined ? undefined : VirtualMachineSchema.parse(raw);
    },
    guest,
    events,
    clock,
    logger: memoryLogger(),
    settings: SETTINGS,
    random: () => 0,
  });
  srv.seed(VMS, {
    apiVersion: "vm.neon.tech/v1",
    kind: "VirtualMachine",
    metadata: { name: "vm1", namespace: "default", labels: { app: "x" } },
    spec: {
      guest: {
        cpus: { min: "250m", max: 1, use: "250m" },
        memorySlots: { min: 1, max: 4, use: 1 },
        memorySlotSize: "1Gi",
        rootDisk: { image: "localhost/neonvm-ts/test-guest:dev" },
      },
    },
  });
  return { srv, kube, clock, guest, events, r };
}

const vmObj = (srv: FakeApiServer) => srv.object(VMS, "default", "vm1")!;
// deno-lint-ignore no-explicit-any
const get = (o: unknown, path: string): any =>
  path.split(".").reduce((x, k) => (x as Record<string, unknown> | undefined)?.[k], o);

Deno.test("vm reconciler: create -> Running -> scale -> QMP failure -> delete, against a fake API", async () => {
  const { srv, kube, guest, events, r } = setup();
  using _k = kube;
  await using _s = srv;
  const signal = new AbortController().signal;
  const key = "default/vm1";
  const round = () => r.reconcile(key, signal);

  assert.deepEqual(await round(), { requeueAfterMs: 0 });
  assert.deepEqual(get(vmObj(srv), "metadata.finalizers"), ["vm.neon.tech/finalizer"]);
  await round();
  assert.equal(get(vmObj(srv), "spec.cpuScalingMode"), "QmpScaling");
  await round();
  assert.equal(get(vmObj(srv), "status.phase"), "Pending");
  await round();
  assert.equal(get(vmObj(srv), "status.podName"), "vm1-bbbbb");
  await round();
  const pod = srv.object(PODS_PATH, "default", "vm1-bbbbb")!;
  assert.ok(pod, "runner pod created");
  assert.deepEqual(get(pod, "metadata.labels"), {
    app: "x",
    "app.kubernetes.io/name": "NeonVM",
    "vm.neon.tech/name": "vm1",
  });
  const cmd = get(pod, "spec.containers")[0].command as string[];
  const specArg = cmd[cmd.indexOf("-vmspec") + 1]!;
  const decoded = JSON.parse(
    await new Response(
      new Blob([Uint8Array.from(atob(specArg), (c) => c.charCodeAt(0))]).stream()
        .pipeThrough(new DecompressionStream("gzip")),
    ).text(),
  );
  assert.deepEqual(decoded.guest.cpus, { max: 1, min: "250m", use: "250m" });
  assert.deepEqual(events.events.map((e) => e.reason), ["Created"]);

  // A second round before the pod is ready does not create another pod.
  await round();
  assert.equal(
    srv.requests.filter((q) => q.startsWith("POST /api/v1/namespaces/default/pods")).length,
    1,
  );

  // The kubelet reports the runner ready.
  await kube.resource(PODS, PodSchema).patch("vm1-bbbbb", {
    type: "merge",
    body: { spec: { nodeName: "node-1" } },
  }, { namespace: "default" });
  await kube.resource(PODS, PodSchema).patch("vm1-bbbbb", {
    type: "merge",
    body: {
      status: {
        phase: "Running",
        podIP: "10.1.0.7",
        containerStatuses: [{ name: "neonvm-runner", ready: true }],
      },
    },
  }, { namespace: "default", subresource: "status" });
  await round();
  assert.equal(get(vmObj(srv), "status.phase"), "Running");
  assert.equal(get(vmObj(srv), "status.podIP"), "10.1.0.7");
  await round();
  assert.equal(get(vmObj(srv), "status.cpus"), "250m");
  assert.equal(get(vmObj(srv), "status.memorySize"), "1Gi");
  assert.deepEqual(get(vmObj(srv), "status.conditions").map((c: { type: string }) => c.type), [
    "Available",
  ]);
  assert.ok(guest.calls.includes("probe 10.1.0.7:20183"));

  // Scale to 1 CPU / 4 slots.
  await kube.resource(VIRTUAL_MACHINES, VirtualMachineSchema).patch("vm1", {
    type: "merge",
    body: { spec: { guest: { cpus: { use: 1 }, memorySlots: { use: 4 } } } },
  }, { namespace: "default" });
  await round();
  assert.equal(get(vmObj(srv), "status.phase"), "Scaling");
  assert.deepEqual(guest.calls.slice(-2), ["cpuChange 1000", `virtioMem ${3 * GiB}`]);
  assert.deepEqual(
    get(srv.object(PODS_PATH, "default", "vm1-bbbbb"), "spec.containers")[0].resources.requests,
    { cpu: "1100m", memory: "4352Mi" },
  );
  await round();
  assert.equal(get(vmObj(srv), "status.phase"), "Running");
  assert.equal(get(vmObj(srv), "status.cpus"), 1);
  assert.equal(get(vmObj(srv), "status.memorySize"), "4Gi");

  // A QMP failure becomes an Event and Degraded, not a thrown error.
  await kube.resource(VIRTUAL_MACHINES, VirtualMachineSchema).patch("vm1", {
    type: "merge",
    body: { spec: { guest: { cpus: { max: 2, use: 2 } } } },
  }, { namespace: "default" });
  guest.failPlug = true;
  assert.deepEqual(await round(), { requeueAfterMs: 5_000 });
  const degraded = get(vmObj(srv), "status.conditions").find((c: { type: string }) =>
    c.type === "Degraded"
  );
  assert.equal(degraded.status, "True");
  assert.equal(degraded.reason, "QmpFailed");
  assert.match(degraded.message, /Cannot plugCpu: QMP connection refused/);
  assert.equal(events.events.at(-1)?.type, "Warning");
  // Healthy again: the plug succeeds, Degraded is kept until a clean round, then removed.
  guest.failPlug = false;
  await round();
  await round();
  await round();
  assert.equal(get(vmObj(srv), "status.cpus"), 2);
  assert.deepEqual(get(vmObj(srv), "status.conditions").map((c: { type: string }) => c.type), [
    "Available",
  ]);

  // Deletion: the pod is deleted and the finalizer released; the VM disappears.
  await kube.resource(VIRTUAL_MACHINES, VirtualMachineSchema).delete("vm1", {
    namespace: "default",
  });
  assert.ok(get(vmObj(srv), "metadata.deletionTimestamp"));
  await round();
  assert.equal(srv.object(VMS, "default", "vm1"), undefined);
  assert.equal(srv.object(PODS_PATH, "default", "vm1-bbbbb"), undefined);
});
