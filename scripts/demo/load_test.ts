/**
 * Tests for the demo's pure pieces around load: pgbench output parsing and the manifests.
 * @module
 */
import assert from "node:assert/strict";
import { parsePgbench } from "./load.ts";
import { demoVm, loadPod, memoryPressureSql } from "./manifests.ts";
import { VirtualMachineSchema } from "../../src/api/virtualmachine.ts";

const OK_OUTPUT = `pgbench (15.14 (Debian 15.14-0+deb12u1))
transaction type: <builtin: select only>
scaling factor: 2
number of clients: 6
number of threads: 2
maximum number of tries: 1
duration: 120 s
number of transactions actually processed: 51234
number of failed transactions: 0 (0.000%)
latency average = 14.05 ms
initial connection time = 310.2 ms
tps = 426.95 (without initial connection time)
`;

Deno.test("parsePgbench reads the summary of a clean run", () => {
  const r = parsePgbench(0, OK_OUTPUT);
  assert.equal(r.transactions, 51234);
  assert.equal(r.tps, 426.95);
  assert.equal(r.failed, 0);
  assert.equal(r.connectionBroken, false);
});

Deno.test("parsePgbench sees a lost connection", () => {
  const out = OK_OUTPUT.replace(
    "duration: 120 s",
    "pgbench: error: client 3 aborted in command 1 (SQL) of script 0; perhaps the backend died while processing",
  );
  const r = parsePgbench(2, out);
  assert.equal(r.connectionBroken, true);
  assert.equal(r.code, 2);
});

Deno.test("the demo VM is a valid VirtualMachine with autoscaling on and the guest ports", () => {
  const vm = VirtualMachineSchema.parse(demoVm({ name: "pg-demo" }));
  assert.equal(vm.metadata.labels?.["autoscaling.neon.tech/enabled"], "true");
  assert.equal(vm.spec.schedulerName, "autoscale-scheduler");
  assert.deepEqual(vm.spec.guest.cpus, { min: 250, max: 2000, use: 250 });
  assert.deepEqual(vm.spec.guest.memorySlots, { min: 1, max: 8, use: 1 });
  assert.deepEqual(vm.spec.guest.ports?.map((p) => p.port), [5432, 9100, 10301]);
  assert.equal(vm.spec.guest.kernelImage, "localhost/neonvm-ts/demo-kernel:dev");
  const noKernel = VirtualMachineSchema.parse(demoVm({ name: "x", kernelImage: null }));
  assert.equal(noKernel.spec.guest.kernelImage, undefined);
});

Deno.test("load pod and memory query", () => {
  const p = loadPod("l", "img") as { spec: { containers: { image: string }[] } };
  assert.equal(p.spec.containers[0]?.image, "img");
  const sql = memoryPressureSql(100, 5);
  assert.match(sql, /repeat\(repeat\('x', 1048576\), 100\)/);
  assert.match(sql, /pg_sleep\(5\)/);
  // Postgres refuses a repeat count below 1; a fraction of a MiB still asks for one.
  assert.match(memoryPressureSql(0.2, 1), /, 1\)\)/);
});
