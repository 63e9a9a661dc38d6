/**
 * The generated CRDs (deploy/crds/) on a real kube-apiserver: they are accepted and established;
 * valid objects written from reference §2 are stored exactly as our parser + encoder predict
 * (CRD defaults == zod defaults, nothing pruned); `kubectl get neonvm` / `neonvmm` print the §2
 * columns; the CEL rules reject bad objects with messages naming the field, and agree with the
 * pure `virtualMachineProblems` / `virtualMachineUpdateProblems`.
 * Runs against the local cluster if it is up, else a bare etcd + kube-apiserver (see _api.ts).
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { parseOrThrow } from "../../src/api/_parse.ts";
import {
  encodeVirtualMachine,
  type Json,
  virtualMachineProblems,
  VirtualMachineSchema,
  virtualMachineUpdateProblems,
} from "../../src/api/virtualmachine.ts";
import {
  encodeVirtualMachineMigration,
  VirtualMachineMigrationSchema,
} from "../../src/api/virtualmachine_migration.ts";
import { encodeIpPool, IpPoolSchema } from "../../src/api/ippool.ts";
import { type TestApi, testApi } from "./_api.ts";

const CRD_DIR = new URL("../../deploy/crds/", import.meta.url).pathname;
const NS = `crds-test-${crypto.randomUUID().slice(0, 8)}`;

type Obj = Record<string, unknown>;

/** A full VM spec written from §2.1 (everything except what needs other objects). */
function fullVm(name: string): Obj {
  return {
    apiVersion: "vm.neon.tech/v1",
    kind: "VirtualMachine",
    metadata: { name, namespace: NS, labels: { "autoscaling.neon.tech/enabled": "true" } },
    spec: {
      cpuScalingMode: "QmpScaling",
      targetArchitecture: "amd64",
      schedulerName: "autoscale-scheduler",
      nodeSelector: { "kubernetes.io/os": "linux" },
      tolerations: [{ key: "k", operator: "Exists", effect: "NoSchedule" }],
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [{
              matchExpressions: [{ key: "kubernetes.io/os", operator: "In", values: ["linux"] }],
            }],
          },
        },
      },
      podResources: { limits: { cpu: "1", memory: "1Gi" }, requests: { cpu: "100m" } },
      extraInitContainers: [{ name: "hello", image: "busybox", command: ["true"] }],
      initScript: "echo hi",
      guest: {
        kernelImage: "kernel:1",
        appendKernelCmdline: "quiet",
        memhpAutoMovableRatio: "401",
        cpus: { min: "250m", max: 4, use: "1500m" },
        memorySlotSize: "1Gi",
        memorySlots: { min: 1, max: 8, use: 2 },
        rootDisk: { image: "vm-postgres:15", size: "2Gi", execute: ["/bin/true"] },
        command: ["postgres"],
        args: ["-c", "x=1"],
        env: [{ name: "A" }, { name: "B", value: "b" }],
        ports: [{ name: "postgres", port: 5432 }, { port: 9100, protocol: "UDP" }],
        settings: { sysctl: ["vm.swappiness=1"], swap: "512Mi" },
      },
      disks: [
        { name: "pgdata", mountPath: "/pgdata", emptyDisk: { size: "10Gi", discard: true } },
        { name: "cfg", mountPath: "/cfg", watch: true, configMap: { name: "cfg" } },
        { name: "sec", mountPath: "/sec", readOnly: true, secret: { secretName: "s" } },
        { name: "scratch", mountPath: "/scratch", tmpfs: { size: "64Mi" } },
      ],
      extraNetwork: { enable: true },
      service_links: false,
      runnerImage: "runner:dev",
      tls: { certificateIssuer: "ca", expireAfter: "720h", renewBefore: "24h", serverName: "x" },
      overcommit: { cpu: "2", memory: "1500m" },
      targetRevision: { revision: { value: 3, flags: 1 }, updatedAt: "2025-01-02T03:04:05Z" },
    },
  };
}

function minimalVm(name: string): Obj {
  return {
    apiVersion: "vm.neon.tech/v1",
    kind: "VirtualMachine",
    metadata: { name, namespace: NS },
    spec: {
      guest: {
        cpus: { min: 1, max: 2, use: 1 },
        memorySlots: { min: 1, max: 4, use: 1 },
        rootDisk: { image: "img" },
      },
    },
  };
}

function withSpec(vm: Obj, edit: (spec: Obj & { guest: Obj }) => void): Obj {
  const copy = structuredClone(vm) as Obj & { spec: Obj & { guest: Obj } };
  edit(copy.spec);
  return copy;
}

/** What we expect the apiserver to store: our parse (defaults) then our encoding. */
function predictedVm(vm: Obj): Json {
  return encodeVirtualMachine(parseOrThrow(VirtualMachineSchema, vm, "VirtualMachine"));
}

async function create(api: TestApi, obj: Obj) {
  return await api.kubectl(["create", "-o", "json", "-f", "-"], JSON.stringify(obj));
}

async function patch(api: TestApi, resource: string, name: string, body: Obj, status = false) {
  const args = ["patch", resource, name, "-n", NS, "--type=merge", "-o", "json", "-p"];
  args.push(JSON.stringify(body));
  if (status) args.push("--subresource=status");
  return await api.kubectl(args);
}

function ok(r: { code: number; stderr: string }, what: string): void {
  assert.equal(r.code, 0, `${what}: ${r.stderr}`);
}

function rejected(r: { code: number; stderr: string }, ...mustContain: string[]): void {
  assert.notEqual(r.code, 0, `expected a rejection containing ${mustContain.join(" / ")}`);
  for (const s of mustContain) assert.ok(r.stderr.includes(s), `"${s}" not in: ${r.stderr}`);
}

/** RFC 7386 JSON merge patch (to predict the object a rejected patch would have produced). */
function mergePatch(target: unknown, patchValue: unknown): unknown {
  if (patchValue === null || typeof patchValue !== "object" || Array.isArray(patchValue)) {
    return patchValue;
  }
  const out: Obj = target !== null && typeof target === "object" && !Array.isArray(target)
    ? { ...(target as Obj) }
    : {};
  for (const [k, v] of Object.entries(patchValue as Obj)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

const cpuWire = fc.constantFrom<number | string>(1, 2, 4, "250m", "500m", "1500m", "0.5", "2000m");
const slotSizeWire = fc.constantFrom<string | number>("8Mi", "1Gi", "512Mi", "12Mi", "1G", 8388608);

/** Random VM specs around the rule boundaries (valid and invalid). */
const randomVm = fc.record({
  cpus: fc.record({ min: cpuWire, max: cpuWire, use: cpuWire }),
  slots: fc.record({
    min: fc.integer({ min: 1, max: 5 }),
    max: fc.integer({ min: 1, max: 5 }),
    use: fc.integer({ min: 1, max: 5 }),
  }),
  memorySlotSize: slotSizeWire,
  portName: fc.constantFrom(undefined, "pg", "qmp"),
  disk: fc.constantFrom(undefined, "ok", "reserved", "two-sources", "no-source"),
}).map((r) =>
  withSpec(minimalVm("rand"), (s) => {
    s.guest.cpus = r.cpus;
    s.guest.memorySlots = r.slots;
    s.guest.memorySlotSize = r.memorySlotSize;
    if (r.portName !== undefined) s.guest.ports = [{ name: r.portName, port: 5432 }];
    if (r.disk === "ok") s.disks = [{ name: "d", mountPath: "/d", tmpfs: { size: "1Mi" } }];
    if (r.disk === "reserved") {
      s.disks = [{ name: "runtime", mountPath: "/d", tmpfs: { size: "1Mi" } }];
    }
    if (r.disk === "two-sources") {
      s.disks = [{
        name: "d",
        mountPath: "/d",
        tmpfs: { size: "1Mi" },
        configMap: { name: "c" },
      }];
    }
    if (r.disk === "no-source") s.disks = [{ name: "d", mountPath: "/d" }];
  })
);

/** Random merge patches of a stored VM's spec (mutable, immutable and one-way fields). */
const randomSpecPatch = fc.record({
  cpus: fc.option(fc.record({ min: cpuWire, max: cpuWire, use: cpuWire }, { requiredKeys: [] }), {
    nil: undefined,
  }),
  slotsUse: fc.option(fc.integer({ min: 1, max: 9 }), { nil: undefined }),
  slotsMax: fc.option(fc.integer({ min: 1, max: 9 }), { nil: undefined }),
  cpuScalingMode: fc.constantFrom(undefined, null, "QmpScaling", "SysfsScaling"),
  enableSSH: fc.constantFrom(undefined, true, false),
  command: fc.constantFrom(undefined, null, ["postgres"], ["other"]),
  overcommit: fc.constantFrom(undefined, { cpu: "2" }, null),
}).map((r) => {
  const guest: Obj = {};
  if (r.cpus !== undefined) guest.cpus = r.cpus;
  const slots: Obj = {};
  if (r.slotsUse !== undefined) slots.use = r.slotsUse;
  if (r.slotsMax !== undefined) slots.max = r.slotsMax;
  if (Object.keys(slots).length > 0) guest.memorySlots = slots;
  if (r.command !== undefined) guest.command = r.command;
  const spec: Obj = { guest };
  if (r.cpuScalingMode !== undefined) spec.cpuScalingMode = r.cpuScalingMode;
  if (r.enableSSH !== undefined) spec.enableSSH = r.enableSSH;
  if (r.overcommit !== undefined) spec.overcommit = r.overcommit;
  return { spec };
});

/** Parses kubectl's table output into header + rows of columns split on 2+ spaces. */
function table(text: string): string[][] {
  return text.trim().split("\n").map((l) => l.trim().split(/\s{2,}/));
}

Deno.test({
  name: "generated CRDs on a real kube-apiserver",
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  await using api = await testApi();

  await t.step(`CRDs are accepted and established (${api.kind} apiserver)`, async () => {
    ok(
      await api.kubectl(["apply", "--server-side", "--force-conflicts", "-f", CRD_DIR]),
      "apply CRDs",
    );
    ok(
      await api.kubectl([
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/virtualmachines.vm.neon.tech",
        "crd/virtualmachinemigrations.vm.neon.tech",
        "crd/ippools.vm.neon.tech",
      ]),
      "CRDs established",
    );
    const crd = await api.kubectl(["get", "crd", "virtualmachines.vm.neon.tech", "-o", "json"]);
    ok(crd, "get crd");
    const conds = (JSON.parse(crd.stdout) as {
      status: { conditions: { type: string; status: string }[] };
    }).status.conditions;
    for (const c of ["NamesAccepted", "Established"]) {
      assert.equal(conds.find((x) => x.type === c)?.status, "True", c);
    }
    ok(await api.kubectl(["create", "namespace", NS]), "namespace");
  });

  await t.step("valid VMs are stored exactly as our parser and encoder predict", async () => {
    for (const vm of [fullVm("full"), minimalVm("minimal")]) {
      const r = await create(api, vm);
      ok(r, "create VM");
      const stored = JSON.parse(r.stdout) as Obj;
      const parsed = parseOrThrow(VirtualMachineSchema, stored, "stored VirtualMachine");
      assert.deepEqual(virtualMachineProblems(parsed.spec), []);
      const want = predictedVm(vm) as Obj;
      assert.deepEqual(stored.spec, want.spec);
      // And a stored object encodes back to itself.
      assert.deepEqual((encodeVirtualMachine(parsed) as Obj).spec, stored.spec);
    }
  });

  await t.step("status subresource and printer columns", async () => {
    const status = {
      phase: "Running",
      restartCount: 1,
      podName: "full-abc",
      podIP: "10.214.0.7",
      node: "node-0",
      extraNetIP: "10.100.0.5",
      extraNetMask: "255.255.0.0",
      cpus: "1500m",
      memorySize: "2Gi",
      sshSecretName: "ssh-neonvm-full",
      conditions: [{
        type: "Available",
        status: "True",
        reason: "Reconciling",
        message: "ok",
        lastTransitionTime: "2025-01-02T03:04:05Z",
      }],
      currentRevision: { revision: { value: 3, flags: 1 }, updatedAt: "2025-01-02T03:04:06Z" },
    };
    // Replace the whole status (a controller on a shared cluster may have written its own).
    const r = await api.kubectl([
      "patch",
      "neonvm",
      "full",
      "-n",
      NS,
      "--subresource=status",
      "--type=json",
      "-o",
      "json",
      "-p",
      JSON.stringify([{ op: "add", path: "/status", value: status }]),
    ]);
    ok(r, "patch status");
    const stored = JSON.parse(r.stdout) as Obj;
    const parsed = parseOrThrow(VirtualMachineSchema, stored, "VirtualMachine");
    assert.deepEqual((encodeVirtualMachine(parsed) as Obj).status, stored.status);
    assert.deepEqual(stored.status, { ...status });

    // A shared cluster's controller may race us; compare the table with a JSON read around it.
    let lastErr: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      const tbl = await api.kubectl(["get", "neonvm", "full", "-n", NS, "-o", "wide"]);
      const js = await api.kubectl(["get", "neonvm", "full", "-n", NS, "-o", "json"]);
      ok(tbl, "get neonvm");
      ok(js, "get neonvm json");
      const s = JSON.parse(js.stdout) as { status: Obj; spec: { guest: { rootDisk: Obj } } & Obj };
      const [header, row] = table(tbl.stdout);
      try {
        assert.deepEqual(header, [
          "NAME",
          "CPUS",
          "MEMORY",
          "POD",
          "EXTRAIP",
          "STATUS",
          "RESTARTS",
          "AGE",
          "NODE",
          "IMAGE",
          "CPUSCALINGMODE",
          "TARGETARCHITECTURE",
        ]);
        assert.deepEqual(
          [...row!.slice(0, 7), ...row!.slice(8)],
          [
            "full",
            String(s.status.cpus),
            String(s.status.memorySize),
            String(s.status.podName),
            String(s.status.extraNetIP),
            String(s.status.phase),
            String(s.status.restartCount),
            String(s.status.node),
            String(s.spec.guest.rootDisk.image),
            String(s.spec.cpuScalingMode),
            String(s.spec.targetArchitecture),
          ],
        );
        lastErr = undefined;
        break;
      } catch (err) {
        lastErr = err;
      }
    }
    if (lastErr !== undefined) throw lastErr;
    const narrow = await api.kubectl(["get", "neonvm", "-n", NS]);
    ok(narrow, "get neonvm (narrow)");
    assert.deepEqual(table(narrow.stdout)[0], [
      "NAME",
      "CPUS",
      "MEMORY",
      "POD",
      "EXTRAIP",
      "STATUS",
      "RESTARTS",
      "AGE",
    ]);
  });

  await t.step("create-time rules reject bad VMs naming the field", async () => {
    const cases: [string, (s: Obj & { guest: Obj }) => void, string[]][] = [
      ["use-above-max", (s) => {
        s.guest.cpus = { min: 1, max: 2, use: 3 };
      }, ["spec.guest.cpus.use", "guest.cpus.use must be less than or equal to guest.cpus.max"]],
      ["use-below-min", (s) => {
        s.guest.cpus = { min: "500m", max: 2, use: "250m" };
      }, ["spec.guest.cpus.use", "guest.cpus.use must be greater than or equal to guest.cpus.min"]],
      ["slots-above-max", (s) => {
        s.guest.memorySlots = { min: 1, max: 2, use: 3 };
      }, ["spec.guest.memorySlots.use", "guest.memorySlots.use must be less than or equal"]],
      ["slot-size", (s) => {
        s.guest.memorySlotSize = "12Mi";
      }, ["spec.guest.memorySlotSize", "must be a positive multiple of 8Mi"]],
      ["reserved-disk", (s) => {
        s.disks = [{ name: "rootdisk", mountPath: "/x", tmpfs: { size: "1Mi" } }];
      }, ["spec.disks[0].name", "reserved"]],
      ["two-sources", (s) => {
        s.disks = [{
          name: "d",
          mountPath: "/x",
          tmpfs: { size: "1Mi" },
          emptyDisk: { size: "1Gi" },
        }];
      }, ["spec.disks[0]", "exactly one of emptyDisk, configMap, secret, tmpfs"]],
      ["qmp-port", (s) => {
        s.guest.ports = [{ name: "qmp", port: 1234 }];
      }, ["spec.guest.ports[0].name", "'qmp' is reserved"]],
    ];
    for (const [name, edit, want] of cases) {
      const vm = withSpec(minimalVm(`bad-${name}`), edit);
      // The pure rules agree with the apiserver.
      const spec = parseOrThrow(VirtualMachineSchema, vm, "vm").spec;
      assert.notDeepEqual(virtualMachineProblems(spec), [], name);
      rejected(await create(api, vm), ...want);
    }
    // Schema-level limits (from the zod checks) are enforced too.
    rejected(
      await create(
        api,
        withSpec(minimalVm("bad-slots"), (s) => {
          s.guest.memorySlots = { min: 1, max: 600, use: 1 };
        }),
      ),
      "spec.guest.memorySlots.max",
    );
    rejected(
      await create(
        api,
        withSpec(minimalVm("bad-cpu"), (s) => {
          s.guest.cpus = { min: "1mfoo", max: 2, use: 1 };
        }),
      ),
      "spec.guest.cpus.min",
    );
  });

  await t.step("random specs: the apiserver accepts exactly when the pure rules do", async () => {
    const samples = fc.sample(randomVm, { numRuns: 30, seed: 20250923 });
    let accepted = 0;
    for (const vm of samples) {
      const spec = parseOrThrow(VirtualMachineSchema, vm, "vm").spec;
      const problems = virtualMachineProblems(spec);
      const r = await api.kubectl(
        ["create", "--dry-run=server", "-o", "json", "-f", "-"],
        JSON.stringify(vm),
      );
      assert.equal(
        r.code === 0,
        problems.length === 0,
        `${JSON.stringify((vm as { spec: unknown }).spec)}\npure: ${
          JSON.stringify(problems)
        }\napiserver: ${r.stderr}`,
      );
      for (const p of problems) assert.ok(r.stderr.includes(p.message), p.message);
      if (r.code === 0) accepted++;
    }
    // The sample exercises both outcomes.
    assert.ok(accepted > 0 && accepted < samples.length, `accepted ${accepted}/${samples.length}`);
  });

  await t.step("random updates: the apiserver accepts exactly when the pure rules do", async () => {
    const base = withSpec(minimalVm("upd"), (s) => {
      s.guest.cpus = { min: "500m", max: 4, use: 1 };
      s.guest.memorySlots = { min: 1, max: 8, use: 2 };
      s.guest.command = ["postgres"];
    });
    const created = await create(api, base);
    ok(created, "create update base");
    const samples = fc.sample(randomSpecPatch, { numRuns: 30, seed: 7 });
    let accepted = 0;
    for (const p of samples) {
      // Re-read each time: on a shared cluster a controller may have set cpuScalingMode.
      const cur = await api.kubectl(["get", "neonvm", "upd", "-n", NS, "-o", "json"]);
      ok(cur, "get update base");
      const stored = JSON.parse(cur.stdout) as Obj;
      const prev = parseOrThrow(VirtualMachineSchema, stored, "vm").spec;
      const next = parseOrThrow(VirtualMachineSchema, mergePatch(stored, p), "patched vm").spec;
      const problems = virtualMachineUpdateProblems(prev, next);
      const r = await api.kubectl([
        "patch",
        "neonvm",
        "upd",
        "-n",
        NS,
        "--type=merge",
        "--dry-run=server",
        "-p",
        JSON.stringify(p),
      ]);
      assert.equal(
        r.code === 0,
        problems.length === 0,
        `${JSON.stringify(p)}\npure: ${JSON.stringify(problems)}\napiserver: ${r.stderr}`,
      );
      for (const q of problems) assert.ok(r.stderr.includes(q.message), q.message);
      if (r.code === 0) accepted++;
    }
    assert.ok(accepted > 0 && accepted < samples.length, `accepted ${accepted}/${samples.length}`);
  });

  await t.step("update-time rules: immutable and one-way fields", async () => {
    const before = parseOrThrow(VirtualMachineSchema, fullVm("full"), "vm").spec;
    const cases: [Obj, string][] = [
      [{ guest: { cpus: { max: 8 } } }, "guest.cpus.max is immutable"],
      [{ guest: { cpus: { min: "500m" } } }, "guest.cpus.min is immutable"],
      [{ guest: { memorySlots: { min: 2 } } }, "guest.memorySlots.min is immutable"],
      [{ guest: { memorySlots: { max: 16 } } }, "guest.memorySlots.max is immutable"],
      [{ guest: { rootDisk: { image: "other" } } }, "guest.rootDisk is immutable"],
      [{ guest: { command: ["other"] } }, "guest.command is immutable"],
      [{ guest: { args: null } }, "guest.args is immutable"],
      [{ guest: { env: [] } }, "guest.env is immutable"],
      [{ guest: { ports: [{ port: 1 }] } }, "guest.ports is immutable"],
      [{ guest: { settings: { swap: "1Gi" } } }, "guest.settings is immutable"],
      [{ disks: [] }, "disks is immutable"],
      [{ podResources: { limits: { cpu: "2" } } }, "podResources is immutable"],
      [{ enableAcceleration: false }, "enableAcceleration is immutable"],
      [{ enableSSH: false }, "enableSSH is immutable"],
      [{ initScript: "echo bye" }, "initScript is immutable"],
      [{ enableNetworkMonitoring: true }, "enableNetworkMonitoring is immutable"],
      [
        { cpuScalingMode: "SysfsScaling" },
        "cpuScalingMode is not allowed to be changed once it's set",
      ],
      [{ cpuScalingMode: null }, "cpuScalingMode is not allowed to be changed once it's set"],
      [
        { targetArchitecture: "arm64" },
        "targetArchitecture is not allowed to be changed once it's set",
      ],
    ];
    for (const [specPatch, message] of cases) {
      rejected(await patch(api, "neonvm", "full", { spec: specPatch }), message);
    }
    // Allowed changes: use values, overcommit, revision, slot size; quantities compared by value.
    const allowed = await patch(api, "neonvm", "full", {
      spec: {
        guest: { cpus: { use: 4, min: "0.25" }, memorySlots: { use: 8 }, memorySlotSize: "2Gi" },
        overcommit: { cpu: "1" },
        targetRevision: { revision: { value: 4, flags: 2 }, updatedAt: "2025-01-02T03:05:00Z" },
      },
    });
    ok(allowed, "allowed update");
    const after = parseOrThrow(VirtualMachineSchema, JSON.parse(allowed.stdout), "vm").spec;
    assert.deepEqual(virtualMachineUpdateProblems(before, after), []);
    assert.equal(after.guest.cpus.use, 4000);
    // Bounds still hold on update.
    rejected(
      await patch(api, "neonvm", "full", { spec: { guest: { cpus: { use: 5 } } } }),
      "guest.cpus.use must be less than or equal to guest.cpus.max",
    );
    // One-way fields may go from unset to set.
    ok(
      await patch(api, "neonvm", "minimal", {
        spec: { cpuScalingMode: "QmpScaling", targetArchitecture: "amd64" },
      }),
      "nil -> value",
    );
  });

  await t.step("VirtualMachineMigration: defaults, immutability, columns", async () => {
    const vmm = {
      apiVersion: "vm.neon.tech/v1",
      kind: "VirtualMachineMigration",
      metadata: { name: "mig", namespace: NS },
      spec: { vmName: "full" },
    };
    const r = await create(api, vmm);
    ok(r, "create migration");
    const stored = JSON.parse(r.stdout) as Obj;
    const want = encodeVirtualMachineMigration(
      parseOrThrow(VirtualMachineMigrationSchema, vmm, "migration"),
    ) as Obj;
    assert.deepEqual(stored.spec, want.spec);
    rejected(
      await patch(api, "neonvmm", "mig", { spec: { incremental: false } }),
      "updating migration spec is not allowed",
    );
    rejected(
      await create(api, {
        ...vmm,
        metadata: { name: "mig2", namespace: NS },
        spec: { vmName: "" },
      }),
      "spec.vmName",
    );
    const st = await patch(api, "neonvmm", "mig", {
      status: {
        phase: "Running",
        sourcePodName: "full-abc",
        sourcePodIP: "10.214.0.7",
        targetPodName: "full-def",
        targetPodIP: "10.214.1.9",
        info: { status: "active", ram: { transferred: 1, remaining: 2, total: 3 } },
      },
    }, true);
    ok(st, "migration status");
    const tbl = await api.kubectl(["get", "neonvmm", "mig", "-n", NS]);
    ok(tbl, "get neonvmm");
    const [header, row] = table(tbl.stdout);
    assert.deepEqual(header, [
      "NAME",
      "VM",
      "SOURCE",
      "SOURCEIP",
      "TARGET",
      "TARGETIP",
      "STATUS",
      "AGE",
    ]);
    // Our own status write is what the columns show (a shared controller may have moved on).
    const cur = JSON.parse(
      (await api.kubectl(["get", "neonvmm", "mig", "-n", NS, "-o", "json"]))
        .stdout,
    ) as { status: Obj };
    if (cur.status.phase === "Running") {
      assert.deepEqual(row!.slice(0, 7), [
        "mig",
        "full",
        "full-abc",
        "10.214.0.7",
        "full-def",
        "10.214.1.9",
        "Running",
      ]);
    }
  });

  await t.step("IPPool round-trips", async () => {
    const pool = {
      apiVersion: "vm.neon.tech/v1",
      kind: "IPPool",
      metadata: { name: "extra-10.100.0.0-16", namespace: NS },
      spec: { range: "10.100.0.0/16", allocations: { "5": { id: "abc", podref: `${NS}/x` } } },
    };
    const r = await create(api, pool);
    ok(r, "create IPPool");
    const stored = JSON.parse(r.stdout) as Obj;
    assert.deepEqual(
      stored.spec,
      (encodeIpPool(parseOrThrow(IpPoolSchema, pool, "IPPool")) as Obj).spec,
    );
  });

  await api.kubectl(["delete", "namespace", NS, "--wait=false"]);
});
