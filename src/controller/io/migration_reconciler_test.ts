import assert from "node:assert/strict";
import { VirtualMachineSchema } from "../../api/virtualmachine.ts";
import { VirtualMachineMigrationSchema } from "../../api/virtualmachine_migration.ts";
import { FakeClock } from "../../lib/clock.ts";
import { FakeApiServer } from "../../lib/k8s/_fake_apiserver.ts";
import { KubeClient } from "../../lib/k8s/client.ts";
import { PodSchema } from "../../lib/k8s/core_types.ts";
import { MemoryEventSink } from "../../lib/k8s/events.ts";
import { PODS, VIRTUAL_MACHINE_MIGRATIONS, VIRTUAL_MACHINES } from "../../lib/k8s/meta.ts";
import { memoryLogger } from "../../lib/log.ts";
import { RUNNER } from "../core/_fixtures_test.ts";
import type { MigrateProgress } from "../core/migration.ts";
import type { MigrationParams, MigrationQmp } from "./migration_qmp.ts";
import { MigrationReconciler } from "./migration_reconciler.ts";

const VMS = "/apis/vm.neon.tech/v1/virtualmachines";
const VMMS = "/apis/vm.neon.tech/v1/virtualmachinemigrations";
const PODS_PATH = "/api/v1/pods";

class FakeMigrationQmp implements MigrationQmp {
  calls: string[] = [];
  status = "active";
  syncTargetCpus(s: string, t: string): Promise<void> {
    this.calls.push(`sync ${s}->${t}`);
    return Promise.resolve();
  }
  start(s: string, t: string, _p: number, p: MigrationParams): Promise<void> {
    this.calls.push(`start ${s}->${t} inc=${p.incremental} bw=${p.maxBandwidthBytes}`);
    return Promise.resolve();
  }
  progress(): Promise<MigrateProgress> {
    return Promise.resolve({ status: this.status, info: { status: this.status, totalTimeMs: 42 } });
  }
  cancel(): Promise<void> {
    this.calls.push("cancel");
    return Promise.resolve();
  }
  quit(ip: string): Promise<void> {
    this.calls.push(`quit ${ip}`);
    return Promise.resolve();
  }
}

// deno-lint-ignore no-explicit-any
const get = (o: unknown, path: string): any =>
  path.split(".").reduce((x, k) => (x as Record<string, unknown> | undefined)?.[k], o);

Deno.test("migration reconciler: PreMigrating -> target pod -> start -> completed hand-over", async () => {
  await using srv = new FakeApiServer();
  using kube = new KubeClient({ server: "http://fake", fetch: (r) => srv.handle(r) });
  const qmp = new FakeMigrationQmp();
  const vm = srv.seed(VMS, {
    apiVersion: "vm.neon.tech/v1",
    kind: "VirtualMachine",
    metadata: { name: "vm1", namespace: "default" },
    spec: {
      cpuScalingMode: "QmpScaling",
      guest: {
        cpus: { min: "250m", max: 1, use: "250m" },
        memorySlots: { min: 1, max: 4, use: 1 },
        rootDisk: { image: "img" },
      },
    },
    status: {
      phase: "Running",
      podName: "vm1-src",
      podIP: "10.0.0.1",
      node: "node-1",
      restartCount: 0,
    },
  });
  srv.seed(PODS_PATH, {
    metadata: { name: "vm1-src", namespace: "default", labels: { "vm.neon.tech/name": "vm1" } },
    spec: { nodeName: "node-1", containers: [{ name: "neonvm-runner" }] },
    status: { phase: "Running", podIP: "10.0.0.1" },
  });
  srv.seed(VMMS, {
    apiVersion: "vm.neon.tech/v1",
    kind: "VirtualMachineMigration",
    metadata: { name: "mig1", namespace: "default" },
    spec: { vmName: "vm1" },
  });
  const r = new MigrationReconciler({
    migrations: kube.resource(VIRTUAL_MACHINE_MIGRATIONS, VirtualMachineMigrationSchema),
    vms: kube.resource(VIRTUAL_MACHINES, VirtualMachineSchema),
    pods: kube.resource(PODS, PodSchema),
    cachedMigration: () => VirtualMachineMigrationSchema.parse(srv.object(VMMS, "default", "mig1")),
    qmp,
    events: new MemoryEventSink(),
    clock: new FakeClock(Date.UTC(2026, 10, 27)),
    logger: memoryLogger(),
    runner: RUNNER,
    random: () => 0.5,
  });
  const signal = new AbortController().signal;
  const round = () => r.reconcile("default/mig1", signal);
  const mig = () => srv.object(VMMS, "default", "mig1");
  await round(); // finalizer
  await round(); // VM becomes controller owner
  assert.equal(get(mig(), "metadata.ownerReferences")[0].uid, vm.metadata.uid);
  await round(); // target pod name persisted
  const target = get(mig(), "status.targetPodName");
  assert.match(target, /^vm1-[a-z0-9]{5}$/);
  await round(); // VM PreMigrating, migration Pending
  assert.equal(get(srv.object(VMS, "default", "vm1"), "status.phase"), "PreMigrating");
  assert.equal(get(mig(), "status.phase"), "Pending");
  await round(); // target pod created
  const tpod = srv.object(PODS_PATH, "default", target);
  assert.ok(tpod);
  assert.equal(get(tpod, "metadata.ownerReferences")[0].kind, "VirtualMachineMigration");
  // Target runner is scheduled to the other node and comes up.
  await kube.resource(PODS, PodSchema).patch(target, {
    type: "merge",
    body: { spec: { nodeName: "node-2" } },
  }, { namespace: "default" });
  await kube.resource(PODS, PodSchema).patch(target, {
    type: "merge",
    body: {
      status: {
        phase: "Running",
        podIP: "10.0.0.2",
        containerStatuses: [{ name: "neonvm-runner", ready: false }],
      },
    },
  }, { namespace: "default", subresource: "status" });
  await round(); // source owner added, CPUs synced, migration started
  assert.deepEqual(qmp.calls, [
    "sync 10.0.0.1->10.0.0.2",
    `start 10.0.0.1->10.0.0.2 inc=true bw=${1024 ** 3}`,
  ]);
  assert.equal(get(srv.object(VMS, "default", "vm1"), "status.phase"), "Migrating");
  assert.equal(get(mig(), "status.phase"), "Running");
  assert.deepEqual(
    get(srv.object(PODS_PATH, "default", "vm1-src"), "metadata.ownerReferences").map((
      o: { name: string },
    ) => o.name),
    ["mig1"],
  );
  await round(); // progress recorded
  assert.equal(get(mig(), "status.info.totalTimeMs"), 42);
  qmp.status = "completed";
  await round(); // hand-over
  const vmAfter = srv.object(VMS, "default", "vm1");
  assert.equal(get(vmAfter, "status.podName"), target);
  assert.equal(get(vmAfter, "status.podIP"), "10.0.0.2");
  // podName and node change in the same write: no VM reconcile ran in between.
  assert.equal(get(vmAfter, "status.node"), "node-2");
  assert.equal(get(vmAfter, "status.phase"), "Running");
  assert.equal(get(mig(), "status.phase"), "Succeeded");
  assert.ok(qmp.calls.includes("quit 10.0.0.1"));
  assert.deepEqual(
    get(srv.object(PODS_PATH, "default", target), "metadata.ownerReferences").map((
      o: { kind: string; controller: boolean },
    ) => [o.kind, o.controller]),
    [["VirtualMachine", true]],
  );
  await round(); // source pod deleted
  assert.equal(srv.object(PODS_PATH, "default", "vm1-src"), undefined);
  assert.equal(get(mig(), "status.sourcePodName"), undefined);
});
