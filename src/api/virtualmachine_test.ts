import assert from "node:assert/strict";
import fc from "fast-check";
import { ParseError } from "../lib/errors.ts";
import { parseOrThrow, parseResult } from "./_parse.ts";
import {
  cpuUseMilli,
  encodeVirtualMachine,
  encodeVirtualMachineStatus,
  isAlivePhase,
  memoryBoundsBytes,
  memoryUseBytes,
  setCondition,
  statusAfterPodCleanup,
  toWire,
  type VirtualMachine,
  virtualMachineProblems,
  VirtualMachineSchema,
  type VirtualMachineSpec,
  virtualMachineUpdateProblems,
} from "./virtualmachine.ts";

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

// A VM as the apiserver returns it after CRD defaulting (keys sorted, as it serves them), written
// by hand from reference §2.1/§2.2/§10.
const STORED_VM = [
  '{"apiVersion":"vm.neon.tech/v1","kind":"VirtualMachine",',
  '"metadata":{"annotations":{"autoscaling.neon.tech/bounds":"{}"},',
  '"labels":{"autoscaling.neon.tech/enabled":"true"},"name":"example","namespace":"default"},',
  '"spec":{"cpuScalingMode":"QmpScaling",',
  '"disks":[{"emptyDisk":{"discard":true,"size":"10Gi"},"mountPath":"/pgdata","name":"pgdata",',
  '"readOnly":false,"watch":false},',
  '{"configMap":{"items":[{"key":"a","path":"a.conf"}],"name":"cfg"},"mountPath":"/cfg",',
  '"name":"cfg","readOnly":true,"watch":true}],',
  '"enableAcceleration":true,"enableNetworkMonitoring":false,"enableSSH":true,',
  '"extraNetwork":{"enable":true,"interface":"net1"},',
  '"guest":{"args":["-c","x"],"cpus":{"max":4,"min":"250m","use":"1500m"},',
  '"env":[{"name":"A","value":""}],"memorySlotSize":"1Gi",',
  '"memorySlots":{"max":8,"min":1,"use":2},"ports":[{"name":"postgres","port":5432,',
  '"protocol":"TCP"}],"rootDisk":{"image":"vm-postgres:15","imagePullPolicy":"IfNotPresent",',
  '"size":"2Gi"},"settings":{"swap":"512Mi","sysctl":["vm.swappiness=1"]}},',
  '"overcommit":{"cpu":"2","memory":"1500m"},',
  '"podResources":{"limits":{"cpu":"1","memory":"1Gi"},"requests":{"cpu":"100m"}},',
  '"qmp":20183,"qmpManual":20184,"restartPolicy":"Always","runnerPort":25183,',
  '"schedulerName":"autoscale-scheduler",',
  '"targetRevision":{"revision":{"flags":1,"value":3},"updatedAt":"2025-01-02T03:04:05Z"},',
  '"terminationGracePeriodSeconds":5},',
  '"status":{"conditions":[{"lastTransitionTime":"2025-01-02T03:04:05Z",',
  '"message":"Pod (example-abc) for VirtualMachine (example) created successfully",',
  '"reason":"Reconciling","status":"True","type":"Available"}],"cpus":"1500m",',
  '"currentRevision":{"revision":{"flags":1,"value":3},"updatedAt":"2025-01-02T03:04:06Z"},',
  '"extraNetIP":"10.100.0.5","extraNetMask":"255.255.0.0","memorySize":"2Gi",',
  '"node":"node-0","phase":"Running","podIP":"10.214.0.7","podName":"example-abc",',
  '"restartCount":1,"sshSecretName":"ssh-neonvm-example"}}',
].join("");

function minimalWire(): Record<string, unknown> {
  return {
    apiVersion: "vm.neon.tech/v1",
    kind: "VirtualMachine",
    metadata: { name: "m", namespace: "default" },
    spec: {
      guest: {
        cpus: { min: 1, max: 2, use: 1 },
        memorySlots: { min: 1, max: 4, use: 1 },
        rootDisk: { image: "img" },
      },
    },
  };
}

Deno.test("a stored VM parses and encodes back byte for byte", () => {
  const vm = parseOrThrow(VirtualMachineSchema, JSON.parse(STORED_VM), "VirtualMachine");
  assert.equal(JSON.stringify(encodeVirtualMachine(vm)), STORED_VM);
  assert.equal(JSON.stringify(toWire(vm)), STORED_VM);
  // Decoded units.
  assert.deepEqual(vm.spec.guest.cpus, { min: 250, max: 4000, use: 1500 });
  assert.equal(vm.spec.guest.memorySlotSize, GiB);
  assert.equal(vm.spec.guest.settings?.swap, 512 * MiB);
  assert.equal(vm.spec.disks?.[0]?.emptyDisk?.size, 10 * GiB);
  assert.deepEqual(vm.spec.overcommit, { cpu: 2000, memory: 1500 });
  assert.equal(vm.status?.cpus, 1500);
  assert.equal(vm.status?.memorySize, 2 * GiB);
  assert.equal(memoryUseBytes(vm), 2 * GiB);
  assert.equal(cpuUseMilli(vm), 1500);
  assert.deepEqual(memoryBoundsBytes(vm.spec.guest), { min: GiB, max: 8 * GiB, use: 2 * GiB });
  // podResources quantities are kept exactly as written.
  assert.deepEqual(vm.spec.podResources?.limits, { cpu: "1", memory: "1Gi" });
});

Deno.test("parsing applies the CRD defaults of §2.1", () => {
  const vm = parseOrThrow(VirtualMachineSchema, minimalWire(), "VirtualMachine");
  assert.equal(vm.spec.qmp, 20183);
  assert.equal(vm.spec.qmpManual, 20184);
  assert.equal(vm.spec.runnerPort, 25183);
  assert.equal(vm.spec.terminationGracePeriodSeconds, 5);
  assert.equal(vm.spec.restartPolicy, "Always");
  assert.equal(vm.spec.enableSSH, true);
  assert.equal(vm.spec.enableAcceleration, true);
  assert.equal(vm.spec.enableNetworkMonitoring, false);
  assert.equal(vm.spec.guest.memorySlotSize, GiB);
  assert.equal(vm.spec.guest.rootDisk.imagePullPolicy, "IfNotPresent");
  assert.equal(vm.spec.cpuScalingMode, undefined); // no CRD default: the controller sets it
  assert.equal(vm.spec.extraNetwork, undefined); // nested defaults only when the parent exists
  const withNet = minimalWire();
  (withNet.spec as Record<string, unknown>).extraNetwork = {};
  (withNet.spec as Record<string, unknown>).tls = {
    certificateIssuer: "ca",
    expireAfter: "720h",
    renewBefore: "24h",
    serverName: "x",
  };
  const spec = parseOrThrow(VirtualMachineSchema, withNet, "VirtualMachine").spec;
  assert.deepEqual(spec.extraNetwork, { enable: false, interface: "net1" });
  assert.equal(spec.tls?.mountPath, "/var/tls");
});

Deno.test("encoding writes MilliCPU and quantities in the reference's forms", () => {
  const vm = parseOrThrow(VirtualMachineSchema, minimalWire(), "VirtualMachine");
  const cases: [number, number | string][] = [[1000, 1], [250, "250m"], [2500, "2500m"], [0, 0]];
  for (const [milli, wire] of cases) {
    const v: VirtualMachine = {
      ...vm,
      spec: { ...vm.spec, guest: { ...vm.spec.guest, cpus: { min: 0, max: milli, use: milli } } },
      status: { restartCount: 0, cpus: milli, memorySize: 1536 * MiB },
    };
    const out = encodeVirtualMachine(v) as {
      spec: { guest: { cpus: { use: unknown } } };
      status: { cpus: unknown; memorySize: unknown };
    };
    assert.equal(out.spec.guest.cpus.use, wire);
    assert.equal(out.status.cpus, wire);
    assert.equal(out.status.memorySize, "1536Mi");
  }
});

Deno.test("non-canonical quantities come back canonical, and encoding is then stable", () => {
  const w = minimalWire();
  const g = (w.spec as { guest: Record<string, unknown> }).guest;
  g.cpus = { min: "0.25", max: "2000m", use: 0.5 };
  g.memorySlotSize = "1024Mi";
  const once = encodeVirtualMachine(parseOrThrow(VirtualMachineSchema, w, "vm"));
  const guest = (once as { spec: { guest: Record<string, unknown> } }).spec.guest;
  assert.deepEqual(guest.cpus, { max: 2, min: "250m", use: "500m" });
  assert.equal(guest.memorySlotSize, "1Gi");
  const twice = encodeVirtualMachine(parseOrThrow(VirtualMachineSchema, once, "vm"));
  assert.equal(JSON.stringify(twice), JSON.stringify(once));
});

Deno.test("unknown fields are kept on the parsed value and written back", () => {
  const w = minimalWire();
  (w.spec as Record<string, unknown>).futureField = { a: [1, 2] };
  (w.spec as { guest: Record<string, unknown> }).guest.futureGuestField = "x";
  (w as Record<string, unknown>).status = { phase: "Running", restartCount: 0, newStatus: true };
  const out = encodeVirtualMachine(parseOrThrow(VirtualMachineSchema, w, "vm")) as {
    spec: Record<string, unknown> & { guest: Record<string, unknown> };
    status: Record<string, unknown>;
  };
  assert.deepEqual(out.spec.futureField, { a: [1, 2] });
  assert.equal(out.spec.guest.futureGuestField, "x");
  assert.equal(out.status.newStatus, true);
});

Deno.test("bad input is a ParseError naming every offending path", () => {
  const w = minimalWire();
  const g = (w.spec as { guest: Record<string, unknown> }).guest;
  g.cpus = { min: 1, max: 2, use: "lots" };
  g.memorySlots = { min: 0, max: 600, use: 1 };
  (w.spec as Record<string, unknown>).restartPolicy = "Sometimes";
  (w.spec as Record<string, unknown>).disks = [{ name: "Bad_Name", mountPath: "/x", tmpfs: {} }];
  const r = parseResult(VirtualMachineSchema, w, 'VirtualMachine "default/m"');
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.ok(r.error instanceof ParseError);
  for (
    const p of [
      "spec.guest.cpus.use",
      "spec.guest.memorySlots.min",
      "spec.guest.memorySlots.max",
      "spec.restartPolicy",
      "spec.disks[0].name",
      "spec.disks[0].tmpfs.size",
    ]
  ) {
    assert.ok(r.error.paths.includes(p), `${p} not in ${r.error.paths.join(", ")}`);
  }
  assert.match(r.error.message, /^Cannot parse VirtualMachine "default\/m": /);
  assert.throws(() => parseOrThrow(VirtualMachineSchema, w, "vm"), ParseError);
  // Wrong kind / apiVersion.
  const k = parseResult(VirtualMachineSchema, { ...minimalWire(), kind: "Pod" }, "vm");
  assert.ok(!k.ok && k.error.paths.includes("kind"));
});

Deno.test("property: the parser never throws and reports failures as ParseError with paths", () => {
  fc.assert(
    fc.property(fc.anything(), (input) => {
      const r = parseResult(VirtualMachineSchema, input, "vm");
      if (!r.ok) {
        assert.ok(r.error instanceof ParseError);
        assert.ok(r.error.paths.length > 0);
      }
    }),
    { numRuns: 300 },
  );
  // Mutations of a valid object: replace one leaf with an arbitrary value.
  const leaves = [
    ["spec", "guest", "cpus", "use"],
    ["spec", "guest", "memorySlots", "max"],
    ["spec", "guest", "rootDisk"],
    ["spec", "qmp"],
    ["spec", "disks"],
    ["status"],
    ["metadata", "labels"],
  ];
  fc.assert(
    fc.property(fc.constantFrom(...leaves), fc.anything(), (path, value) => {
      const w = minimalWire();
      let cur = w as Record<string, unknown>;
      for (const seg of path.slice(0, -1)) cur = cur[seg] as Record<string, unknown>;
      cur[path[path.length - 1]!] = value;
      const r = parseResult(VirtualMachineSchema, w, "vm");
      if (!r.ok) assert.ok(r.error.paths.length > 0);
    }),
    { numRuns: 300 },
  );
});

const milliArb = fc.integer({ min: 0, max: 64_000 });
const vmArb = fc.record({
  min: milliArb,
  max: milliArb,
  use: milliArb,
  slotMiB: fc.integer({ min: 1, max: 1024 }).map((n) => n * 8),
  slots: fc.tuple(
    fc.integer({ min: 1, max: 512 }),
    fc.integer({ min: 1, max: 512 }),
    fc.integer({ min: 1, max: 512 }),
  ),
  phase: fc.option(
    fc.constantFrom("Pending", "Running", "Scaling", "Migrating", "Failed") as fc.Arbitrary<
      "Pending" | "Running" | "Scaling" | "Migrating" | "Failed"
    >,
    { nil: undefined },
  ),
  memBytes: fc.option(fc.integer({ min: 0, max: 2 ** 45 }), { nil: undefined }),
  overcommit: fc.option(fc.integer({ min: 1, max: 10_000 }), { nil: undefined }),
}).map(({ min, max, use, slotMiB, slots, phase, memBytes, overcommit }): VirtualMachine => {
  const base = parseOrThrow(VirtualMachineSchema, minimalWire(), "vm");
  const spec: VirtualMachineSpec = {
    ...base.spec,
    guest: {
      ...base.spec.guest,
      cpus: { min, max, use },
      memorySlotSize: slotMiB * MiB,
      memorySlots: { min: slots[0], max: slots[1], use: slots[2] },
    },
  };
  if (overcommit !== undefined) spec.overcommit = { cpu: overcommit };
  const status = { restartCount: 0 } as NonNullable<VirtualMachine["status"]>;
  if (phase !== undefined) status.phase = phase;
  if (memBytes !== undefined) status.memorySize = memBytes;
  return { ...base, spec, status };
});

Deno.test("property: parse(encode(vm)) == vm and encoding is a fixed point", () => {
  fc.assert(
    fc.property(vmArb, (vm) => {
      const wire = encodeVirtualMachine(vm);
      const back = parseOrThrow(VirtualMachineSchema, JSON.parse(JSON.stringify(wire)), "vm");
      assert.deepEqual(back, vm);
      assert.equal(JSON.stringify(encodeVirtualMachine(back)), JSON.stringify(wire));
    }),
    { numRuns: 200 },
  );
});

Deno.test("virtualMachineProblems states the §2.7 create rules", () => {
  const vm = parseOrThrow(VirtualMachineSchema, JSON.parse(STORED_VM), "vm");
  assert.deepEqual(virtualMachineProblems(vm.spec), []);
  const bad: VirtualMachineSpec = {
    ...vm.spec,
    guest: {
      ...vm.spec.guest,
      cpus: { min: 500, max: 1000, use: 2000 },
      memorySlots: { min: 2, max: 4, use: 1 },
      memorySlotSize: 12 * MiB,
      ports: [{ name: "qmp", port: 1, protocol: "TCP" }],
    },
    disks: [{ name: "rootdisk", mountPath: "/x", readOnly: false, watch: false }],
  };
  assert.deepEqual(virtualMachineProblems(bad).map((p) => p.path), [
    "spec.guest.cpus.use",
    "spec.guest.memorySlots.use",
    "spec.guest.memorySlotSize",
    "spec.guest.ports[0].name",
    "spec.disks[0].name",
    "spec.disks[0]",
  ]);
  for (const p of virtualMachineProblems(bad)) {
    const field = p.path.replace(/^spec\./, "").replace(/\[\d+\]/g, "[]").split(".")[0]!;
    assert.ok(p.message.includes(field), `${p.message} names ${field}`);
  }
});

Deno.test("virtualMachineUpdateProblems: immutable and one-way fields", () => {
  const vm = parseOrThrow(VirtualMachineSchema, JSON.parse(STORED_VM), "vm");
  const spec = vm.spec;
  assert.deepEqual(virtualMachineUpdateProblems(spec, spec), []);
  // Mutable: use values, overcommit, targetRevision, slot size (not checked by the reference).
  const ok: VirtualMachineSpec = {
    ...spec,
    guest: {
      ...spec.guest,
      cpus: { ...spec.guest.cpus, use: 4000 },
      memorySlots: { ...spec.guest.memorySlots, use: 8 },
    },
    overcommit: { cpu: 1000 },
  };
  assert.deepEqual(virtualMachineUpdateProblems(spec, ok), []);
  const changed: VirtualMachineSpec = {
    ...spec,
    guest: { ...spec.guest, cpus: { ...spec.guest.cpus, max: 8000 }, command: ["x"] },
    enableSSH: false,
    cpuScalingMode: "SysfsScaling",
  };
  assert.deepEqual(virtualMachineUpdateProblems(spec, changed).map((p) => p.message), [
    "guest.cpus.max is immutable",
    "guest.command is immutable",
    "enableSSH is immutable",
    "cpuScalingMode is not allowed to be changed once it's set",
  ]);
  // One-way: nil -> value is fine.
  const { cpuScalingMode: _c, ...noMode } = spec;
  assert.deepEqual(virtualMachineUpdateProblems(noMode, spec), []);
  assert.equal(virtualMachineUpdateProblems(spec, noMode).length, 1);
});

Deno.test("status helpers: IsAlive, Cleanup, SetStatusCondition", () => {
  for (const p of ["Running", "PreMigrating", "Migrating", "Scaling"] as const) {
    assert.equal(isAlivePhase(p), true);
  }
  for (const p of ["Pending", "Succeeded", "Failed", undefined] as const) {
    assert.equal(isAlivePhase(p), false);
  }
  const vm = parseOrThrow(VirtualMachineSchema, JSON.parse(STORED_VM), "vm");
  const cleaned = statusAfterPodCleanup(vm.status!);
  assert.equal(cleaned.podName, undefined);
  assert.equal(cleaned.podIP, undefined);
  assert.equal(cleaned.node, undefined);
  assert.equal(cleaned.cpus, undefined);
  assert.equal(cleaned.memorySize, undefined);
  assert.equal(cleaned.phase, "Running");
  assert.equal(cleaned.restartCount, 1);
  assert.equal(cleaned.extraNetIP, "10.100.0.5");
  assert.equal(cleaned.sshSecretName, "ssh-neonvm-example");
  assert.equal(cleaned.conditions?.length, 1);
  assert.ok(!("cpus" in (encodeVirtualMachineStatus(cleaned) as object)));

  const t1 = "2025-01-01T00:00:00Z";
  const t2 = "2025-01-01T00:01:00Z";
  let c = setCondition(undefined, {
    type: "Available",
    status: "True",
    reason: "Reconciling",
    message: "a",
  }, t1);
  c = setCondition(
    c,
    { type: "Available", status: "True", reason: "Reconciling", message: "b" },
    t2,
  );
  assert.equal(c.length, 1);
  assert.equal(c[0]!.lastTransitionTime, t1); // same status: time kept
  assert.equal(c[0]!.message, "b");
  c = setCondition(c, { type: "Available", status: "False", reason: "Down", message: "c" }, t2);
  assert.equal(c[0]!.lastTransitionTime, t2);
  c = setCondition(c, { type: "Degraded", status: "True", reason: "X", message: "d" }, t2);
  assert.deepEqual(c.map((x) => x.type), ["Available", "Degraded"]);
});
