import assert from "node:assert/strict";
import { parse } from "yaml";
import { z } from "zod";
import {
  buildCrds,
  collectRules,
  diffSummary,
  NotStructuralError,
  renderCrds,
  type SchemaNode,
  toStructural,
  zodToJsonSchema,
} from "./gen_crds.ts";

type Crd = {
  metadata: { name: string };
  spec: {
    group: string;
    names: { kind: string; plural: string; singular: string; shortNames?: string[] };
    scope: string;
    versions: {
      name: string;
      served: boolean;
      storage: boolean;
      subresources?: { status?: object };
      additionalPrinterColumns?: {
        name: string;
        type: string;
        jsonPath: string;
        priority?: number;
      }[];
      schema: { openAPIV3Schema: SchemaNode };
    }[];
  };
};

const crds = buildCrds() as unknown as Record<string, Crd>;
const vm = crds["vm.neon.tech_virtualmachines.yaml"]!;
const vmm = crds["vm.neon.tech_virtualmachinemigrations.yaml"]!;

/** Asserts the apiserver's structural-schema rules on every node. */
function assertStructural(node: SchemaNode, path: string): void {
  const intOrString = node["x-kubernetes-int-or-string"] === true;
  const preserve = node["x-kubernetes-preserve-unknown-fields"] === true;
  if (intOrString) {
    assert.equal(node.type, undefined, `${path}: int-or-string has no type`);
    assert.deepEqual(node.anyOf, [{ type: "integer" }, { type: "string" }], path);
    assert.equal(typeof node.pattern, "string", `${path}: quantity pattern`);
  } else {
    assert.ok(typeof node.type === "string" || preserve, `${path}: every node is typed`);
    assert.equal(node.anyOf, undefined, `${path}: anyOf only for int-or-string`);
  }
  for (const k of ["$ref", "oneOf", "allOf", "not", "const", "propertyNames", "$schema"]) {
    assert.equal(node[k], undefined, `${path}: no ${k}`);
  }
  if (node.type === "array") assert.ok(node.items, `${path}: arrays have items`);
  // The top-level `metadata: {type: object}` is the one shape the apiserver fills in itself.
  if (node.type === "object" && !preserve && !path.endsWith(".yaml.metadata")) {
    assert.ok(node.properties || node.additionalProperties, `${path}: objects have a shape`);
  }
  for (const [k, v] of Object.entries((node.properties ?? {}) as Record<string, SchemaNode>)) {
    assertStructural(v, `${path}.${k}`);
  }
  if (node.items) assertStructural(node.items as SchemaNode, `${path}[]`);
  if (typeof node.additionalProperties === "object") {
    assertStructural(node.additionalProperties as SchemaNode, `${path}[*]`);
  }
  // Defaults must themselves be wire values.
  if ("default" in node) assert.notEqual(node.default, undefined, path);
}

Deno.test("every generated schema is structural", () => {
  for (const [file, crd] of Object.entries(crds)) {
    assertStructural(crd.spec.versions[0]!.schema.openAPIV3Schema, file);
  }
});

Deno.test("names, scope, versions and subresources follow §2 and D2", () => {
  assert.equal(vm.metadata.name, "virtualmachines.vm.neon.tech");
  assert.equal(vm.spec.group, "vm.neon.tech");
  assert.deepEqual(vm.spec.names, {
    kind: "VirtualMachine",
    listKind: "VirtualMachineList",
    plural: "virtualmachines",
    singular: "neonvm",
    shortNames: ["neonvm"],
  });
  assert.equal(vmm.spec.names.singular, "neonvmm");
  assert.deepEqual(vmm.spec.names.shortNames, ["neonvmm"]);
  for (const crd of [vm, vmm]) {
    assert.equal(crd.spec.scope, "Namespaced");
    assert.equal(crd.spec.versions.length, 1);
    const v = crd.spec.versions[0]!;
    assert.deepEqual([v.name, v.served, v.storage], ["v1", true, true]);
    assert.deepEqual(v.subresources, { status: {} });
  }
  const ip = crds["vm.neon.tech_ippools.yaml"]!;
  assert.equal(ip.spec.names.singular, "ippool");
  assert.equal(ip.spec.versions[0]!.subresources, undefined);
});

Deno.test("printer columns match §2 (Restarts fixed to the real field)", () => {
  const cols = (c: Crd) =>
    c.spec.versions[0]!.additionalPrinterColumns!.map((x) =>
      `${x.name}=${x.jsonPath}${x.priority ? " wide" : ""}`
    );
  assert.deepEqual(cols(vm), [
    "Cpus=.status.cpus",
    "Memory=.status.memorySize",
    "Pod=.status.podName",
    "ExtraIP=.status.extraNetIP",
    "Status=.status.phase",
    "Restarts=.status.restartCount",
    "Age=.metadata.creationTimestamp",
    "Node=.status.node wide",
    "Image=.spec.guest.rootDisk.image wide",
    "CPUScalingMode=.spec.cpuScalingMode wide",
    "TargetArchitecture=.spec.targetArchitecture wide",
  ]);
  assert.deepEqual(cols(vmm), [
    "VM=.spec.vmName",
    "Source=.status.sourcePodName",
    "SourceIP=.status.sourcePodIP",
    "Target=.status.targetPodName",
    "TargetIP=.status.targetPodIP",
    "Status=.status.phase",
    "Age=.metadata.creationTimestamp",
  ]);
});

function at(root: SchemaNode, path: string): SchemaNode {
  let cur = root;
  for (const seg of path.split(".")) {
    cur = (cur.properties as Record<string, SchemaNode>)[seg]!;
    assert.ok(cur, `no ${path}`);
  }
  return cur;
}

Deno.test("defaults are the CRD defaults of §2.1, §2.3 and §10", () => {
  const root = vm.spec.versions[0]!.schema.openAPIV3Schema;
  const want: Record<string, unknown> = {
    "spec.qmp": 20183,
    "spec.qmpManual": 20184,
    "spec.runnerPort": 25183,
    "spec.terminationGracePeriodSeconds": 5,
    "spec.restartPolicy": "Always",
    "spec.enableSSH": true,
    "spec.enableAcceleration": true,
    "spec.enableNetworkMonitoring": false,
    "spec.guest.memorySlotSize": "1Gi",
    "spec.guest.rootDisk.imagePullPolicy": "IfNotPresent",
    "spec.extraNetwork.enable": false,
    "spec.extraNetwork.interface": "net1",
    "spec.tls.mountPath": "/var/tls",
  };
  for (const [p, v] of Object.entries(want)) assert.deepEqual(at(root, p).default, v, p);
  assert.equal(at(root, "spec.cpuScalingMode").default, undefined);
  const mroot = vmm.spec.versions[0]!.schema.openAPIV3Schema;
  const mwant: Record<string, unknown> = {
    "spec.preventMigrationToSameHost": true,
    "spec.completionTimeout": 3600,
    "spec.incremental": true,
    "spec.allowPostCopy": false,
    "spec.autoConverge": true,
    "spec.maxBandwidth": "1Gi",
  };
  for (const [p, v] of Object.entries(mwant)) assert.deepEqual(at(mroot, p).default, v, p);
  assert.deepEqual([
    at(root, "spec.guest.memorySlots.use").minimum,
    at(root, "spec.guest.memorySlots.use").maximum,
  ], [1, 512]);
  assert.equal(at(root, "spec.guest.cpus.use").pattern, "^[0-9]+((\\.[0-9]*)?|m)$");
});

Deno.test("CEL rules cover §2.7 and every message names its field", () => {
  const rules = collectRules(vm.spec.versions[0]!.schema.openAPIV3Schema);
  for (const r of rules) {
    assert.ok(r.rule.length > 0 && r.message.length > 0);
    // Balanced parentheses and quotes: a cheap syntax sanity check (the apiserver test compiles them).
    let depth = 0;
    for (const ch of r.rule) {
      depth += ch === "(" ? 1 : ch === ")" ? -1 : 0;
      assert.ok(depth >= 0, r.rule);
    }
    assert.equal(depth, 0, r.rule);
    assert.equal((r.rule.match(/'/g) ?? []).length % 2, 0, r.rule);
    // The message names the field: the last segment of the schema path, of fieldPath, or both.
    const named = [r.path.split(".").pop()!.replace("[]", ""), ...(r.fieldPath?.split(".") ?? [])]
      .filter((s) => s.length > 0);
    assert.ok(named.some((n) => r.message.includes(n)), `${r.message} (at ${r.path})`);
  }
  const messages = rules.map((r) => r.message).join("\n");
  for (
    const f of [
      "guest.cpus.min is immutable",
      "guest.cpus.max is immutable",
      "guest.memorySlots.min is immutable",
      "guest.memorySlots.max is immutable",
      "guest.ports is immutable",
      "guest.rootDisk is immutable",
      "guest.command is immutable",
      "guest.args is immutable",
      "guest.env is immutable",
      "guest.settings is immutable",
      "disks is immutable",
      "podResources is immutable",
      "enableAcceleration is immutable",
      "enableSSH is immutable",
      "initScript is immutable",
      "enableNetworkMonitoring is immutable",
      "cpuScalingMode is not allowed to be changed once it's set",
      "targetArchitecture is not allowed to be changed once it's set",
      "guest.cpus.use must be less than or equal to guest.cpus.max",
      "guest.cpus.use must be greater than or equal to guest.cpus.min",
      "guest.memorySlots.use must be less than or equal to guest.memorySlots.max",
      "guest.memorySlotSize invalid for use with virtio-mem",
      "'qmp' is reserved",
      "disks[].name is reserved",
    ]
  ) assert.ok(messages.includes(f), f);
  const mrules = collectRules(vmm.spec.versions[0]!.schema.openAPIV3Schema);
  assert.deepEqual(mrules.map((r) => [r.path, r.rule, r.message]), [
    [".spec", "self == oldSelf", "updating migration spec is not allowed"],
  ]);
});

Deno.test("toStructural rejects what the apiserver would reject", () => {
  assert.throws(
    () => toStructural(zodToJsonSchema(z.object({ a: z.union([z.string(), z.number()]) }))),
    NotStructuralError,
  );
  assert.throws(
    () => toStructural(zodToJsonSchema(z.object({ a: z.unknown() }))),
    NotStructuralError,
  );
  assert.throws(
    () => toStructural(zodToJsonSchema(z.object({ a: z.tuple([z.string()]) }))),
    NotStructuralError,
  );
  const ok = toStructural(zodToJsonSchema(z.object({ a: z.literal("x"), b: z.number().gt(0) })));
  assert.deepEqual(ok.properties, {
    a: { type: "string", enum: ["x"] },
    b: { type: "number", minimum: 0, exclusiveMinimum: true },
  });
});

Deno.test("rendered YAML parses back to the same CRDs; --check detects drift", async () => {
  const text = renderCrds();
  for (const [file, body] of Object.entries(text)) {
    assert.deepEqual(parse(body), buildCrds()[file]);
  }
  assert.deepEqual(diffSummary(text, { ...text }), []);
  const changed = { ...text, "vm.neon.tech_ippools.yaml": text["vm.neon.tech_ippools.yaml"] + "x" };
  const d = diffSummary(text, changed);
  assert.equal(d.length, 1);
  assert.match(d[0]!, /^vm\.neon\.tech_ippools\.yaml: differs from line/);
  assert.deepEqual(diffSummary(text, {}).length, 3);
  // The committed files are up to date.
  const dir = new URL("../deploy/crds/", import.meta.url);
  const have: Record<string, string> = {};
  for (const f of Object.keys(text)) have[f] = await Deno.readTextFile(new URL(f, dir));
  assert.deepEqual(diffSummary(text, have), []);
});
