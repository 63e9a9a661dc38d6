/**
 * The controller's scaling path against a real runner and QEMU guest (TCG), without a cluster:
 * the runner runs on the host in its own network namespace (tests/runner harness), the VM and its
 * runner pod live in the in-process fake API server, and the real `VmReconciler` with the real
 * `RealGuestIo` (QMP over TCP, runner HTTP API) drives 0.25 → 2 vCPUs and 1 → 3 GiB and back,
 * until status reports what the guest really has. Needs root and QEMU.
 * @module
 */
import assert from "node:assert/strict";
import { GiB, KiB } from "../../src/api/quantity.ts";
import { VirtualMachineSchema } from "../../src/api/virtualmachine.ts";
import { systemClock } from "../../src/lib/clock.ts";
import { FakeApiServer } from "../../src/lib/k8s/_fake_apiserver.ts";
import { KubeClient } from "../../src/lib/k8s/client.ts";
import { PodSchema } from "../../src/lib/k8s/core_types.ts";
import { MemoryEventSink } from "../../src/lib/k8s/events.ts";
import { PODS, VIRTUAL_MACHINES } from "../../src/lib/k8s/meta.ts";
import { createLogger } from "../../src/lib/log.ts";
import { RealGuestIo } from "../../src/controller/io/guest.ts";
import { VmReconciler } from "../../src/controller/io/vm_reconciler.ts";
import { canRunRealQemu, startRunner } from "../runner/_harness.ts";
import { SETTINGS } from "../../src/controller/core/_fixtures_test.ts";

const VMS = "/apis/vm.neon.tech/v1/virtualmachines";

// deno-lint-ignore no-explicit-any
const get = (o: unknown, path: string): any =>
  path.split(".").reduce((x, k) => (x as Record<string, unknown> | undefined)?.[k], o);

Deno.test({
  name: "controller scaling on a real QEMU guest: 0.25 -> 2 vCPUs, 1 -> 3 GiB, and back",
  ignore: !canRunRealQemu(),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const guestSpec = {
      cpus: { min: "250m", max: 2, use: "250m" },
      memorySlots: { min: 1, max: 4, use: 1 },
    };
    await using runner = await startRunner({ guest: guestSpec });
    const booted = await runner.waitForReport((x) => x.cpusOnline === 1, 240_000);
    const baseKib = booted.memTotalKib;

    await using srv = new FakeApiServer();
    using kube = new KubeClient({ server: "http://fake", fetch: (r) => srv.handle(r) });
    srv.seed(VMS, {
      apiVersion: "vm.neon.tech/v1",
      kind: "VirtualMachine",
      metadata: {
        name: "vm1",
        namespace: "default",
        finalizers: ["vm.neon.tech/finalizer"],
      },
      spec: {
        cpuScalingMode: "QmpScaling",
        guest: { ...guestSpec, memorySlotSize: "1Gi", rootDisk: { image: "img" } },
      },
      status: {
        phase: "Running",
        podName: runner.podName,
        podIP: runner.podIp,
        restartCount: 0,
        conditions: [{
          type: "Available",
          status: "True",
          reason: "Reconciling",
          message: "ok",
          lastTransitionTime: "2026-01-01T00:00:00Z",
        }],
      },
    });
    srv.seed("/api/v1/pods", {
      metadata: {
        name: runner.podName,
        namespace: "default",
        labels: { "app.kubernetes.io/name": "NeonVM", "vm.neon.tech/name": "vm1" },
      },
      spec: {
        nodeName: "host",
        containers: [{
          name: "neonvm-runner",
          resources: { requests: { cpu: "350m", memory: "1280Mi" } },
        }],
      },
      status: {
        phase: "Running",
        podIP: runner.podIp,
        containerStatuses: [{ name: "neonvm-runner", ready: true }],
      },
    });
    const events = new MemoryEventSink();
    const r = new VmReconciler({
      vms: kube.resource(VIRTUAL_MACHINES, VirtualMachineSchema),
      pods: kube.resource(PODS, PodSchema),
      cachedVm: () => VirtualMachineSchema.parse(srv.object(VMS, "default", "vm1")),
      guest: new RealGuestIo(),
      events,
      clock: systemClock,
      logger: createLogger("test", { level: "warn" }),
      settings: SETTINGS,
      random: Math.random,
    });
    const signal = new AbortController().signal;
    const vm = () => srv.object(VMS, "default", "vm1");
    const settle = async (what: string, done: (v: unknown) => boolean, timeoutMs: number) => {
      const deadline = Date.now() + timeoutMs;
      let rounds = 0;
      while (Date.now() < deadline) {
        await r.reconcile("default/vm1", signal);
        rounds++;
        if (done(vm())) return rounds;
        await new Promise((res) => setTimeout(res, 1000));
      }
      throw new Error(
        `Timed out: ${what}; status ${JSON.stringify(get(vm(), "status"))}; events ${
          JSON.stringify(events.events)
        }`,
      );
    };

    // First probe: status reports what the guest has.
    await settle(
      "initial probe",
      (v) => get(v, "status.cpus") === "250m" && get(v, "status.memorySize") === "1Gi",
      30_000,
    );
    assert.deepEqual(get(vm(), "status.conditions").map((c: { type: string }) => c.type), [
      "Available",
    ]);

    // Scale up: one vCPU hot-plug, runner /cpu_change, virtio-mem 2 GiB.
    await kube.resource(VIRTUAL_MACHINES, VirtualMachineSchema).patch("vm1", {
      type: "merge",
      body: { spec: { guest: { cpus: { use: 2 }, memorySlots: { use: 3 } } } },
    }, { namespace: "default" });
    const t0 = Date.now();
    const upRounds = await settle(
      "scale up",
      (v) =>
        get(v, "status.phase") === "Running" && get(v, "status.cpus") === 2 &&
        get(v, "status.memorySize") === "3Gi",
      180_000,
    );
    const upMs = Date.now() - t0;
    const up = await runner.waitForReport(
      (x) => x.cpusOnline === 2 && x.memTotalKib - baseKib > 1.9 * GiB / KiB,
      60_000,
    );
    assert.equal(up.cpusOnline, 2);
    assert.deepEqual(events.events.map((e) => e.reason), ["Scaling", "Scaled"]);
    // D4: the pod's requests followed.
    assert.deepEqual(
      get(srv.object("/api/v1/pods", "default", runner.podName), "spec.containers")[0].resources
        .requests,
      { cpu: "2100m", memory: "3328Mi" },
    );

    // Scale down: vCPU unplug and virtio-mem back to 0.
    await kube.resource(VIRTUAL_MACHINES, VirtualMachineSchema).patch("vm1", {
      type: "merge",
      body: { spec: { guest: { cpus: { use: "500m" }, memorySlots: { use: 1 } } } },
    }, { namespace: "default" });
    const t1 = Date.now();
    const downRounds = await settle(
      "scale down",
      (v) =>
        get(v, "status.phase") === "Running" && get(v, "status.cpus") === "500m" &&
        get(v, "status.memorySize") === "1Gi",
      240_000,
    );
    const downMs = Date.now() - t1;
    await runner.waitForReport((x) => x.cpusOnline === 1, 60_000);
    Deno.stdout.writeSync(new TextEncoder().encode(
      `scale up ${upMs} ms (${upRounds} rounds), scale down ${downMs} ms (${downRounds} rounds)\n`,
    ));
  },
});
