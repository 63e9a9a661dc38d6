/**
 * Generates the NeonVM CustomResourceDefinitions (`deploy/crds/*.yaml`, apiextensions.k8s.io/v1)
 * from the zod schemas in src/api, so the apiserver validates exactly what our parsers accept:
 * zod 4's JSON-schema export (input side, i.e. the wire form) post-processed into a structural
 * OpenAPI v3 schema — every node typed, quantities as `x-kubernetes-int-or-string` with a pattern,
 * maps via `additionalProperties`, free-form embedded Kubernetes types with
 * `x-kubernetes-preserve-unknown-fields`, and the CEL rules (`x-kubernetes-validations`) recorded
 * in the `crdMeta` registry (D6).
 *
 *   deno task gen:crds            write deploy/crds/
 *   deno task gen:crds --check    exit 1 with a diff summary when deploy/crds/ is out of date
 *
 * Must not be imported by src/. The generation itself (`buildCrds`, `renderCrds`) is pure; only
 * `main` touches the file system.
 * @module
 */
import { parseArgs } from "node:util";
import { z } from "zod";
import { stringify } from "yaml";
import { type CrdMeta, crdMeta } from "../src/api/virtualmachine_crd_meta.ts";
import {
  NEONVM_GROUP,
  VirtualMachineSpecSchema,
  VirtualMachineStatusSchema,
} from "../src/api/virtualmachine.ts";
import {
  VirtualMachineMigrationSpecSchema,
  VirtualMachineMigrationStatusSchema,
} from "../src/api/virtualmachine_migration.ts";
import { IpPoolSpecSchema } from "../src/api/ippool.ts";

/** A JSON-schema / OpenAPI node as plain data. */
export type SchemaNode = { [k: string]: unknown };

/** One kubectl printer column. */
export interface PrinterColumn {
  /** Column header. */
  name: string;
  /** OpenAPI type of the column. */
  type: "string" | "integer" | "number" | "boolean" | "date";
  /** JSONPath into the object. */
  jsonPath: string;
  /** 0 = always shown, 1 = only with `-o wide`. */
  priority?: number;
}

/** Printer columns of VirtualMachine (reference §2). */
export const VM_PRINTER_COLUMNS: readonly PrinterColumn[] = [
  { name: "Cpus", type: "string", jsonPath: ".status.cpus" },
  { name: "Memory", type: "string", jsonPath: ".status.memorySize" },
  { name: "Pod", type: "string", jsonPath: ".status.podName" },
  { name: "ExtraIP", type: "string", jsonPath: ".status.extraNetIP" },
  { name: "Status", type: "string", jsonPath: ".status.phase" },
  // Why: the reference points this column at `.status.restarts`, a field that does not exist, so
  // it is always empty; we point it at the real field on purpose.
  { name: "Restarts", type: "integer", jsonPath: ".status.restartCount" },
  { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
  { name: "Node", type: "string", jsonPath: ".status.node", priority: 1 },
  { name: "Image", type: "string", jsonPath: ".spec.guest.rootDisk.image", priority: 1 },
  { name: "CPUScalingMode", type: "string", jsonPath: ".spec.cpuScalingMode", priority: 1 },
  {
    name: "TargetArchitecture",
    type: "string",
    jsonPath: ".spec.targetArchitecture",
    priority: 1,
  },
];

/** Printer columns of VirtualMachineMigration (reference §2). */
export const VMM_PRINTER_COLUMNS: readonly PrinterColumn[] = [
  { name: "VM", type: "string", jsonPath: ".spec.vmName" },
  { name: "Source", type: "string", jsonPath: ".status.sourcePodName" },
  { name: "SourceIP", type: "string", jsonPath: ".status.sourcePodIP" },
  { name: "Target", type: "string", jsonPath: ".status.targetPodName" },
  { name: "TargetIP", type: "string", jsonPath: ".status.targetPodIP" },
  { name: "Status", type: "string", jsonPath: ".status.phase" },
  { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
];

const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;
const SAFE_MAX = Number.MAX_SAFE_INTEGER;

const META_KEY = "x-neonvm-crd-meta";

/** Applies the `crdMeta` entry of one zod node to its JSON-schema node (zod `override` hook). */
function applyMeta(meta: CrdMeta, node: SchemaNode): void {
  if (meta.intOrString) {
    for (const k of ["type", "anyOf", "oneOf"]) delete node[k];
    node.anyOf = [{ type: "integer" }, { type: "string" }];
    node.pattern = meta.intOrString.pattern;
    node["x-kubernetes-int-or-string"] = true;
  }
  if (meta.preserveUnknownFields) node["x-kubernetes-preserve-unknown-fields"] = true;
  if (meta.format) node.format = meta.format;
  if (meta.listMapKeys) {
    node["x-kubernetes-list-type"] = "map";
    node["x-kubernetes-list-map-keys"] = [...meta.listMapKeys];
  }
  if (meta.description) node.description = meta.description;
  if (meta.validations && meta.validations.length > 0) {
    node["x-kubernetes-validations"] = meta.validations.map((v) => {
      const out: SchemaNode = { rule: v.rule, message: v.message };
      if (v.fieldPath !== undefined) out.fieldPath = v.fieldPath;
      return out;
    });
  }
}

/** zod → JSON schema (wire side), with `crdMeta` applied. */
export function zodToJsonSchema(schema: z.ZodType): SchemaNode {
  const js = z.toJSONSchema(schema, {
    io: "input",
    unrepresentable: "throw",
    reused: "inline",
    cycles: "throw",
    override: (ctx) => {
      // Only a marker here: zod rewrites nodes after this hook (it folds `anyOf` of plain types
      // into a type list), so the meta is applied in `toStructural`.
      const meta = crdMeta.get(ctx.zodSchema);
      if (meta) (ctx.jsonSchema as SchemaNode)[META_KEY] = meta;
    },
  }) as SchemaNode;
  delete js.$schema;
  return js;
}

/** Error for a schema node that cannot be made structural. */
export class NotStructuralError extends Error {
  /** Creates the error naming the schema path. */
  constructor(path: string, why: string) {
    super(`Cannot make the CRD schema structural at ${path}: ${why}`);
    this.name = "NotStructuralError";
  }
}

/**
 * Rewrites a JSON-schema node (draft 2020-12, as zod emits it) into a structural OpenAPI v3 node
 * the apiserver accepts. Throws `NotStructuralError` for anything it cannot type.
 */
export function toStructural(input: SchemaNode, path = ""): SchemaNode {
  const node: SchemaNode = { ...input };
  const meta = node[META_KEY] as CrdMeta | undefined;
  delete node[META_KEY];
  if (meta) applyMeta(meta, node);
  const out: SchemaNode = {};
  const intOrString = node["x-kubernetes-int-or-string"] === true;
  const preserve = node["x-kubernetes-preserve-unknown-fields"] === true;
  for (const [k, v] of Object.entries(node)) {
    switch (k) {
      case "$schema":
      case "propertyNames":
      case "additionalProperties":
      case "properties":
      case "items":
      case "const":
      case "exclusiveMinimum":
      case "exclusiveMaximum":
        break; // handled below
      case "anyOf":
        if (!intOrString) throw new NotStructuralError(path, "anyOf outside int-or-string");
        out.anyOf = v;
        break;
      case "type":
        if (typeof v !== "string") {
          throw new NotStructuralError(path, `type ${JSON.stringify(v)} is not a single type`);
        }
        out.type = v;
        break;
      default:
        out[k] = v;
    }
  }
  if ("const" in node) {
    out.enum = [node.const];
    if (out.type === undefined) out.type = typeof node.const === "number" ? "number" : "string";
  }
  // Draft 2020-12 numeric exclusive bounds → OpenAPI v3 boolean form.
  if (typeof node.exclusiveMinimum === "number") {
    out.minimum = node.exclusiveMinimum;
    out.exclusiveMinimum = true;
  }
  if (typeof node.exclusiveMaximum === "number") {
    out.maximum = node.exclusiveMaximum;
    out.exclusiveMaximum = true;
  }
  if (out.type === "integer") {
    // Bounds that only restate the integer format are noise.
    if (out.minimum === INT32_MIN && out.maximum === INT32_MAX) {
      delete out.minimum;
      delete out.maximum;
      out.format ??= "int32";
    }
    if (out.minimum === -SAFE_MAX) delete out.minimum;
    if (out.maximum === SAFE_MAX) delete out.maximum;
  }
  if (out.format === "date-time") delete out.pattern; // zod's JS regex; the format says it all
  if (out.type === undefined && !intOrString && !preserve) {
    throw new NotStructuralError(path, "node has no type");
  }
  const props = node.properties as Record<string, SchemaNode> | undefined;
  if (props !== undefined && Object.keys(props).length > 0) {
    const p: Record<string, SchemaNode> = {};
    for (const [name, child] of Object.entries(props)) {
      p[name] = toStructural(child, `${path}.${name}`);
    }
    out.properties = p;
  }
  const addl = node.additionalProperties;
  if (addl !== undefined && typeof addl === "object" && addl !== null) {
    // zod writes `{}` for loose objects (unknown keys kept on read); that is not a map.
    if (Object.keys(addl).length > 0) {
      out.additionalProperties = toStructural(addl as SchemaNode, `${path}[*]`);
    }
  }
  if (node.items !== undefined) {
    if (Array.isArray(node.items)) throw new NotStructuralError(path, "tuple items");
    out.items = toStructural(node.items as SchemaNode, `${path}[]`);
  } else if (out.type === "array") {
    throw new NotStructuralError(path, "array without items");
  }
  if (
    out.type === "object" && out.properties === undefined &&
    out.additionalProperties === undefined && !preserve
  ) {
    throw new NotStructuralError(path, "object with neither properties nor a map type");
  }
  return out;
}

/** Collects every `x-kubernetes-validations` rule with its schema path (for tests and review). */
export function collectRules(
  node: SchemaNode,
  path = "",
): { path: string; rule: string; message: string; fieldPath?: string }[] {
  const out: { path: string; rule: string; message: string; fieldPath?: string }[] = [];
  const rules = node["x-kubernetes-validations"] as
    | { rule: string; message: string; fieldPath?: string }[]
    | undefined;
  for (const r of rules ?? []) out.push({ path, ...r });
  const props = node.properties as Record<string, SchemaNode> | undefined;
  for (const [k, v] of Object.entries(props ?? {})) out.push(...collectRules(v, `${path}.${k}`));
  if (node.items) out.push(...collectRules(node.items as SchemaNode, `${path}[]`));
  if (typeof node.additionalProperties === "object" && node.additionalProperties !== null) {
    out.push(...collectRules(node.additionalProperties as SchemaNode, `${path}[*]`));
  }
  return out;
}

interface KindInfo {
  kind: string;
  plural: string;
  singular: string;
  shortNames?: string[];
  spec: z.ZodType;
  status?: z.ZodType;
  columns: readonly PrinterColumn[];
  description: string;
}

function topLevel(info: KindInfo): SchemaNode {
  const properties: Record<string, SchemaNode> = {
    apiVersion: {
      description: "APIVersion defines the versioned schema of this representation of an object.",
      type: "string",
    },
    kind: {
      description: "Kind is a string value representing the REST resource this object represents.",
      type: "string",
    },
    metadata: { type: "object" },
    spec: toStructural(zodToJsonSchema(info.spec), ".spec"),
  };
  if (info.status) properties.status = toStructural(zodToJsonSchema(info.status), ".status");
  return { description: info.description, type: "object", properties, required: ["spec"] };
}

function crdFor(info: KindInfo): SchemaNode {
  const version: SchemaNode = {
    name: "v1",
    served: true,
    storage: true,
    schema: { openAPIV3Schema: topLevel(info) },
  };
  if (info.columns.length > 0) {
    version.additionalPrinterColumns = info.columns.map((c) => ({ ...c }));
  }
  if (info.status) version.subresources = { status: {} };
  const names: SchemaNode = {
    kind: info.kind,
    listKind: `${info.kind}List`,
    plural: info.plural,
    singular: info.singular,
  };
  if (info.shortNames) names.shortNames = info.shortNames;
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${info.plural}.${NEONVM_GROUP}` },
    spec: { group: NEONVM_GROUP, names, scope: "Namespaced", versions: [version] },
  };
}

/** The CRDs, keyed by file name under deploy/crds/. */
export function buildCrds(): Record<string, SchemaNode> {
  return {
    "vm.neon.tech_virtualmachines.yaml": crdFor({
      kind: "VirtualMachine",
      plural: "virtualmachines",
      singular: "neonvm",
      shortNames: ["neonvm"],
      spec: VirtualMachineSpecSchema,
      status: VirtualMachineStatusSchema,
      columns: VM_PRINTER_COLUMNS,
      description: "VirtualMachine is a QEMU virtual machine run inside a neonvm-runner pod.",
    }),
    "vm.neon.tech_virtualmachinemigrations.yaml": crdFor({
      kind: "VirtualMachineMigration",
      plural: "virtualmachinemigrations",
      singular: "neonvmm",
      shortNames: ["neonvmm"],
      spec: VirtualMachineMigrationSpecSchema,
      status: VirtualMachineMigrationStatusSchema,
      columns: VMM_PRINTER_COLUMNS,
      description: "VirtualMachineMigration moves a running VirtualMachine to another node.",
    }),
    "vm.neon.tech_ippools.yaml": crdFor({
      kind: "IPPool",
      plural: "ippools",
      singular: "ippool",
      spec: IpPoolSpecSchema,
      columns: [],
      description: "IPPool holds the allocations of the extra network's address range.",
    }),
  };
}

const HEADER = "# Generated by scripts/gen_crds.ts from the zod schemas in src/api. Do not edit.\n";

/** The CRD files' text, keyed by file name. */
export function renderCrds(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [file, crd] of Object.entries(buildCrds())) {
    out[file] = HEADER + "---\n" + stringify(crd, { lineWidth: 0, aliasDuplicateObjects: false });
  }
  return out;
}

/** Returns one line per differing file (empty when `deploy/crds/` is up to date). */
export function diffSummary(
  want: Record<string, string>,
  have: Record<string, string | undefined>,
): string[] {
  const out: string[] = [];
  for (const [file, text] of Object.entries(want)) {
    const cur = have[file];
    if (cur === undefined) {
      out.push(`${file}: missing`);
      continue;
    }
    if (cur === text) continue;
    const a = cur.split("\n");
    const b = text.split("\n");
    let i = 0;
    while (i < a.length && i < b.length && a[i] === b[i]) i++;
    out.push(
      `${file}: differs from line ${i + 1} (have ${a.length} lines, generated ${b.length}):` +
        `\n  have: ${a[i] ?? "<eof>"}\n  want: ${b[i] ?? "<eof>"}`,
    );
  }
  return out;
}

function say(line: string): void {
  Deno.stderr.writeSync(new TextEncoder().encode(line + "\n"));
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: { check: { type: "boolean", default: false }, out: { type: "string" } },
  });
  const dir = values.out ?? new URL("../deploy/crds/", import.meta.url).pathname;
  const want = renderCrds();
  if (values.check) {
    const have: Record<string, string | undefined> = {};
    for (const file of Object.keys(want)) {
      try {
        have[file] = await Deno.readTextFile(`${dir}/${file}`);
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
        have[file] = undefined;
      }
    }
    const diffs = diffSummary(want, have);
    if (diffs.length > 0) {
      say(`deploy/crds/ is out of date (run \`deno task gen:crds\`):`);
      for (const d of diffs) say(`  ${d}`);
      return 1;
    }
    say(`deploy/crds/ is up to date (${Object.keys(want).length} files)`);
    return 0;
  }
  await Deno.mkdir(dir, { recursive: true });
  for (const [file, text] of Object.entries(want)) {
    await Deno.writeTextFile(`${dir}/${file}`, text);
    say(`wrote ${dir.replace(/\/$/, "")}/${file}`);
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main());
