/**
 * The `VirtualMachine` custom resource (`vm.neon.tech/v1`, reference §2.1–§2.2): zod schemas that
 * parse what the apiserver returns (applying the CRD's defaults, so a parsed object equals the
 * stored one), inferred types, the exact wire encoder, and small pure helpers.
 *
 * Decoded units: every CPU amount is MilliCPU (integer), every memory amount is bytes (integer).
 * On the wire CPU amounts are written as the reference's MilliCPU (`2`, `"250m"`) and memory
 * amounts as binary-SI quantity strings (`"1Gi"`); everything else passes through untouched.
 *
 * Unknown fields. The apiserver prunes fields its CRD schema does not know, so with our CRD
 * installed nothing unknown ever arrives. But the CRD in a cluster may be newer than this code (or
 * the reference's), and a full-object update built from a parse that dropped those fields would
 * silently delete them. So objects are parsed "loose" at runtime (unknown keys are kept on the
 * parsed value and written back by `encodeVirtualMachine`), while the TypeScript types list only
 * the known fields (extra keys are invisible to the type checker, as usual for structural types).
 *
 * Cross-field rules (use within min..max, slot-size multiple, immutability) are NOT enforced by the
 * parser: the apiserver enforces them (CEL rules in the CRD, D6), and a controller must still be
 * able to read — and finalize — an object that predates a rule. `virtualMachineProblems` and
 * `virtualMachineUpdateProblems` state the same rules as pure functions.
 *
 * Pure: no I/O. Must not import anything but zod, src/api/ and src/lib/errors.ts.
 * @module
 */
import { z } from "zod";
import {
  BytesSchema,
  encodeMilliCpu,
  formatBinarySi,
  formatMilliCpu,
  MiB,
  type MilliCpu,
  MilliCpuSchema,
  parseQuantity,
} from "./quantity.ts";
import { RevisionWithTimeSchema } from "./revision.ts";
import {
  celQuantity,
  crd,
  K8S_QUANTITY_PATTERN,
  MILLICPU_PATTERN,
} from "./virtualmachine_crd_meta.ts";

// ---------------------------------------------------------------------------------------------
// Building blocks

/**
 * An object schema that keeps unknown keys at runtime but is typed with the known keys only
 * (see the module comment for why).
 */
export function looseObject<S extends z.core.$ZodLooseShape>(
  shape: S,
): z.ZodObject<S, z.core.$strip> {
  return z.looseObject(shape) as unknown as z.ZodObject<S, z.core.$strip>;
}

/** A 32-bit signed integer (`format: int32` in the CRD). */
export function int32(): z.ZodNumber {
  return crd(z.number().int().min(-2147483648).max(2147483647), { format: "int32" });
}

/** A 64-bit integer, limited to JavaScript's safe range (`format: int64` in the CRD). */
export function int64(): z.ZodNumber {
  return crd(z.number().int(), { format: "int64" });
}

/** A CPU amount in a `vm.neon.tech` object: MilliCPU decoded, int-or-string on the wire. */
export function milliCpuField(): z.ZodType<MilliCpu, string | number> {
  return crd(MilliCpuSchema.clone(), { intOrString: { pattern: MILLICPU_PATTERN } });
}

/** A memory amount (`resource.Quantity`): bytes decoded, int-or-string on the wire. */
export function bytesField(): z.ZodType<number, string | number> {
  return crd(BytesSchema.clone(), { intOrString: { pattern: K8S_QUANTITY_PATTERN } });
}

/** A dimensionless quantity decoded to thousandths (`"0.5"` → 500), e.g. an overcommit factor. */
export function milliField(): z.ZodType<number, string | number> {
  return crd(MilliCpuSchema.clone(), { intOrString: { pattern: K8S_QUANTITY_PATTERN } });
}

/**
 * A quantity kept exactly as written (used inside embedded Kubernetes types such as
 * `podResources`, which we copy to pods and never compute with).
 */
export const QuantityWireSchema: z.ZodType<string | number, string | number> = crd(
  z.union([z.string(), z.number().int()]).refine((v) => parseQuantity(v) !== undefined, {
    message: "not a Kubernetes quantity",
  }),
  { intOrString: { pattern: K8S_QUANTITY_PATTERN } },
);

/** A free-form embedded Kubernetes object (kept as is; `x-kubernetes-preserve-unknown-fields`). */
function freeForm<S extends z.core.$ZodLooseShape>(shape: S): z.ZodObject<S, z.core.$strip> {
  return crd(looseObject(shape), { preserveUnknownFields: true });
}

/** Kubernetes `ObjectMeta`, typed for the fields we use; other fields are kept. */
export const ObjectMetaSchema = looseObject({
  name: z.string().optional(),
  generateName: z.string().optional(),
  namespace: z.string().optional(),
  uid: z.string().optional(),
  resourceVersion: z.string().optional(),
  generation: z.number().int().optional(),
  creationTimestamp: z.string().nullable().optional(),
  deletionTimestamp: z.string().nullable().optional(),
  deletionGracePeriodSeconds: z.number().int().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  finalizers: z.array(z.string()).optional(),
  ownerReferences: z.array(looseObject({
    apiVersion: z.string(),
    kind: z.string(),
    name: z.string(),
    uid: z.string(),
    controller: z.boolean().optional(),
    blockOwnerDeletion: z.boolean().optional(),
  })).optional(),
});
/** Kubernetes object metadata. */
export type ObjectMeta = z.infer<typeof ObjectMetaSchema>;

/** `metav1.Condition`, with the apiserver's own validation of its fields. */
export const ConditionSchema = looseObject({
  type: z.string().max(316).regex(
    /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$/,
  ),
  status: z.enum(["True", "False", "Unknown"]),
  observedGeneration: crd(z.number().int().min(0), { format: "int64" }).optional(),
  lastTransitionTime: z.iso.datetime({ offset: true }),
  reason: z.string().min(1).max(1024).regex(/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/),
  message: z.string().max(32768),
});
/** A status condition. */
export type Condition = z.infer<typeof ConditionSchema>;

/** A `conditions` list: a list-map keyed by `type`, as Kubernetes API conventions require. */
export function conditionsField(): z.ZodArray<typeof ConditionSchema> {
  return crd(z.array(ConditionSchema), { listMapKeys: ["type"] });
}

// ---------------------------------------------------------------------------------------------
// Enums

/** CPU hot-plug mode (§5.4). */
export const CpuScalingModeSchema = z.enum(["QmpScaling", "SysfsScaling"]);
/** CPU hot-plug mode. */
export type CpuScalingMode = z.infer<typeof CpuScalingModeSchema>;

/** Target CPU architecture of the VM's node. */
export const CpuArchitectureSchema = z.enum(["amd64", "arm64"]);
/** Target CPU architecture. */
export type CpuArchitecture = z.infer<typeof CpuArchitectureSchema>;

/** VM-level restart policy. */
export const RestartPolicySchema = z.enum(["Always", "OnFailure", "Never"]);
/** VM-level restart policy. */
export type RestartPolicy = z.infer<typeof RestartPolicySchema>;

/** VM phases (an absent phase is the reference's `""`). */
export const VmPhaseSchema = z.enum([
  "Pending",
  "Running",
  "Scaling",
  "PreMigrating",
  "Migrating",
  "Succeeded",
  "Failed",
]);
/** A VM phase. */
export type VmPhase = z.infer<typeof VmPhaseSchema>;

/** Condition types the controller sets on VMs and migrations. */
export const CONDITION_AVAILABLE = "Available";
/** Condition type: something is wrong (never cleared by the reference; see §11). */
export const CONDITION_DEGRADED = "Degraded";

// ---------------------------------------------------------------------------------------------
// Guest

const RESERVED_DISK_NAMES = [
  "virtualmachineimages",
  "rootdisk",
  "runtime",
  "swapdisk",
  "sysfscgroup",
  "ssh-privatekey",
  "ssh-publickey",
  "ssh-authorized-keys",
  "tls",
] as const;
/** Disk names the runner uses itself; a VM may not declare them. */
export const RESERVED_DISK_NAMES_LIST: readonly string[] = RESERVED_DISK_NAMES;

/** virtio-mem block size: `memorySlotSize` must be a multiple of it. */
export const VIRTIO_MEM_BLOCK_BYTES = 8 * MiB;

const q = celQuantity;

/** `guest.cpus`: MilliCPU bounds and the amount in use. */
export const CpusSchema = crd(
  looseObject({ min: milliCpuField(), max: milliCpuField(), use: milliCpuField() }),
  {
    validations: [
      {
        rule: `${q("self.min")}.compareTo(${q("self.use")}) <= 0`,
        message: "guest.cpus.use must be greater than or equal to guest.cpus.min",
        fieldPath: ".use",
      },
      {
        rule: `${q("self.use")}.compareTo(${q("self.max")}) <= 0`,
        message: "guest.cpus.use must be less than or equal to guest.cpus.max",
        fieldPath: ".use",
      },
    ],
  },
);
/** CPU bounds and use, in MilliCPU. */
export type Cpus = z.infer<typeof CpusSchema>;

const slotCount = () => crd(z.number().int().min(1).max(512), { format: "int32" });

/** `guest.memorySlots`: slot counts (1..512); memory = slots × `memorySlotSize`. */
export const MemorySlotsSchema = crd(
  looseObject({ min: slotCount(), max: slotCount(), use: slotCount() }),
  {
    validations: [
      {
        rule: "self.min <= self.use",
        message: "guest.memorySlots.use must be greater than or equal to guest.memorySlots.min",
        fieldPath: ".use",
      },
      {
        rule: "self.use <= self.max",
        message: "guest.memorySlots.use must be less than or equal to guest.memorySlots.max",
        fieldPath: ".use",
      },
    ],
  },
);
/** Memory slot bounds and use. */
export type MemorySlots = z.infer<typeof MemorySlotsSchema>;

/** `guest.rootDisk`: the vm-builder image holding `/disk.qcow2`. */
export const RootDiskSchema = looseObject({
  image: z.string(),
  size: bytesField().optional(),
  imagePullPolicy: z.enum(["Always", "Never", "IfNotPresent"]).default("IfNotPresent"),
  execute: z.array(z.string()).optional(),
});
/** The root disk. */
export type RootDisk = z.infer<typeof RootDiskSchema>;

/** `guest.env[]`. */
export const EnvVarSchema = looseObject({ name: z.string(), value: z.string().default("") });
/** A guest environment variable. */
export type EnvVar = z.infer<typeof EnvVarSchema>;

/** `guest.ports[]`; the name `qmp` is reserved. */
export const PortSchema = crd(
  looseObject({
    name: z.string().optional(),
    port: crd(z.number().int().min(1).max(65535), { format: "int32" }),
    protocol: z.enum(["TCP", "UDP"]).default("TCP"),
  }),
  {
    validations: [{
      rule: "!has(self.name) || self.name != 'qmp'",
      message: "guest.ports[].name: 'qmp' is reserved",
      fieldPath: ".name",
    }],
  },
);
/** A guest port exposed on the pod. */
export type Port = z.infer<typeof PortSchema>;

/** `guest.settings`. */
export const GuestSettingsSchema = looseObject({
  sysctl: z.array(z.string()).optional(),
  swap: bytesField().optional(),
});
/** Extra guest settings. */
export type GuestSettings = z.infer<typeof GuestSettingsSchema>;

/** `spec.guest`. */
export const GuestSchema = crd(
  looseObject({
    kernelImage: z.string().optional(),
    appendKernelCmdline: z.string().optional(),
    memhpAutoMovableRatio: z.string().optional(),
    cpus: CpusSchema,
    memorySlotSize: bytesField().prefault("1Gi"),
    memorySlots: MemorySlotsSchema,
    rootDisk: RootDiskSchema,
    command: z.array(z.string()).optional(),
    args: z.array(z.string()).optional(),
    env: z.array(EnvVarSchema).optional(),
    ports: z.array(PortSchema).optional(),
    settings: GuestSettingsSchema.optional(),
  }),
  {
    validations: [
      {
        rule: `${q("self.memorySlotSize")}.isInteger() && ${
          q("self.memorySlotSize")
        }.asInteger() > 0 && ${
          q("self.memorySlotSize")
        }.asInteger() % ${VIRTIO_MEM_BLOCK_BYTES} == 0`,
        message:
          "guest.memorySlotSize invalid for use with virtio-mem: must be a positive multiple of 8Mi",
        fieldPath: ".memorySlotSize",
      },
      immutableQuantity("cpus.min", "guest.cpus.min"),
      immutableQuantity("cpus.max", "guest.cpus.max"),
      immutableRequired("memorySlots.min", "guest.memorySlots.min"),
      immutableRequired("memorySlots.max", "guest.memorySlots.max"),
      immutableRequired("rootDisk", "guest.rootDisk"),
      immutableOptional("ports", "guest.ports"),
      immutableOptional("command", "guest.command"),
      immutableOptional("args", "guest.args"),
      immutableOptional("env", "guest.env"),
      immutableOptional("settings", "guest.settings"),
    ],
  },
);
/** The guest description. */
export type Guest = z.infer<typeof GuestSchema>;

function immutableRequired(field: string, name: string) {
  return {
    rule: `self.${field} == oldSelf.${field}`,
    message: `${name} is immutable`,
    fieldPath: `.${field}`,
  };
}

function immutableQuantity(field: string, name: string) {
  return {
    rule: `${q(`self.${field}`)}.compareTo(${q(`oldSelf.${field}`)}) == 0`,
    message: `${name} is immutable`,
    fieldPath: `.${field}`,
  };
}

function immutableOptional(field: string, name: string) {
  return {
    rule:
      `has(self.${field}) == has(oldSelf.${field}) && (!has(self.${field}) || self.${field} == oldSelf.${field})`,
    message: `${name} is immutable`,
    fieldPath: `.${field}`,
  };
}

function oneWay(field: string) {
  return {
    rule: `!has(oldSelf.${field}) || (has(self.${field}) && self.${field} == oldSelf.${field})`,
    message: `${field} is not allowed to be changed once it's set`,
    fieldPath: `.${field}`,
  };
}

// ---------------------------------------------------------------------------------------------
// Disks

const KeyToPathSchema = looseObject({
  key: z.string(),
  path: z.string(),
  mode: int32().optional(),
});

/** `corev1.ConfigMapVolumeSource`. */
export const ConfigMapVolumeSourceSchema = looseObject({
  name: z.string().optional(),
  items: z.array(KeyToPathSchema).optional(),
  defaultMode: int32().optional(),
  optional: z.boolean().optional(),
});

/** `corev1.SecretVolumeSource`. */
export const SecretVolumeSourceSchema = looseObject({
  secretName: z.string().optional(),
  items: z.array(KeyToPathSchema).optional(),
  defaultMode: int32().optional(),
  optional: z.boolean().optional(),
});

/** `disks[]`: a named disk with exactly one source. */
export const DiskSchema = crd(
  looseObject({
    name: z.string().min(1).max(32).regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/),
    readOnly: z.boolean().default(false),
    mountPath: z.string(),
    watch: z.boolean().default(false),
    emptyDisk: looseObject({
      size: bytesField(),
      discard: z.boolean().optional(),
      enableQuotas: z.boolean().optional(),
    }).optional(),
    configMap: ConfigMapVolumeSourceSchema.optional(),
    secret: SecretVolumeSourceSchema.optional(),
    tmpfs: looseObject({ size: bytesField() }).optional(),
  }),
  {
    validations: [
      {
        rule: `!(self.name in [${RESERVED_DISK_NAMES.map((n) => `'${n}'`).join(", ")}])`,
        message: "disks[].name is reserved for the runner's own use",
        fieldPath: ".name",
      },
      {
        // Why: the reference does not check this; a disk with no source (or two) cannot be built.
        rule:
          "(has(self.emptyDisk) ? 1 : 0) + (has(self.configMap) ? 1 : 0) + (has(self.secret) ? 1 : 0) + (has(self.tmpfs) ? 1 : 0) == 1",
        message: "disks[]: exactly one of emptyDisk, configMap, secret, tmpfs must be set",
      },
    ],
  },
);
/** A VM disk. */
export type Disk = z.infer<typeof DiskSchema>;

// ---------------------------------------------------------------------------------------------
// Spec

/** `spec.extraNetwork`: the Multus overlay NIC. */
export const ExtraNetworkSchema = looseObject({
  enable: z.boolean().default(false),
  interface: z.string().default("net1"),
  multusNetwork: z.string().optional(),
});
/** Extra network settings. */
export type ExtraNetwork = z.infer<typeof ExtraNetworkSchema>;

const GO_DURATION_RE = /^(0|([0-9]+(\.[0-9]*)?(ns|us|µs|ms|s|m|h))+)$/;

/** `spec.tls`: cert-manager provisioned certificate. Durations are Go duration strings. */
export const TlsSchema = looseObject({
  certificateIssuer: z.string(),
  expireAfter: z.string().regex(GO_DURATION_RE),
  renewBefore: z.string().regex(GO_DURATION_RE),
  serverName: z.string(),
  mountPath: z.string().default("/var/tls"),
});
/** TLS provisioning settings. */
export type Tls = z.infer<typeof TlsSchema>;

/** `spec.overcommit`: factors in thousandths (`"2"` → 2000, `"0.5"` → 500). */
export const OvercommitSchema = looseObject({
  cpu: milliField().optional(),
  memory: milliField().optional(),
});
/** Overcommit factors in thousandths. */
export type Overcommit = z.infer<typeof OvercommitSchema>;

const TolerationSchema = looseObject({
  key: z.string().optional(),
  operator: z.string().optional(),
  value: z.string().optional(),
  effect: z.string().optional(),
  tolerationSeconds: int64().optional(),
});

/** `corev1.ResourceRequirements`, quantities kept as written. */
export const ResourceRequirementsSchema = looseObject({
  limits: z.record(z.string(), QuantityWireSchema).optional(),
  requests: z.record(z.string(), QuantityWireSchema).optional(),
  claims: z.array(looseObject({ name: z.string(), request: z.string().optional() })).optional(),
});
/** Container resource requirements. */
export type ResourceRequirements = z.infer<typeof ResourceRequirementsSchema>;

/** `spec` of a VirtualMachine, with the CRD defaults applied. */
export const VirtualMachineSpecSchema = crd(
  looseObject({
    qmp: crd(z.number().int().min(1).max(65535), { format: "int32" }).default(20183),
    qmpManual: crd(z.number().int().min(1).max(65535), { format: "int32" }).default(20184),
    runnerPort: crd(z.number().int().min(1).max(65535), { format: "int32" }).default(25183),
    terminationGracePeriodSeconds: int64().default(5),
    nodeSelector: z.record(z.string(), z.string()).optional(),
    affinity: freeForm({}).optional(),
    tolerations: z.array(TolerationSchema).optional(),
    schedulerName: z.string().optional(),
    serviceAccountName: z.string().optional(),
    podResources: ResourceRequirementsSchema.optional(),
    restartPolicy: RestartPolicySchema.default("Always"),
    imagePullSecrets: z.array(looseObject({ name: z.string().optional() })).optional(),
    targetArchitecture: CpuArchitectureSchema.optional(),
    guest: GuestSchema,
    extraInitContainers: z.array(freeForm({ name: z.string() })).optional(),
    initScript: z.string().optional(),
    disks: z.array(DiskSchema).optional(),
    extraNetwork: ExtraNetworkSchema.optional(),
    service_links: z.boolean().optional(),
    enableAcceleration: z.boolean().default(true),
    runnerImage: z.string().optional(),
    enableSSH: z.boolean().default(true),
    tls: TlsSchema.optional(),
    overcommit: OvercommitSchema.optional(),
    targetRevision: RevisionWithTimeSchema.optional(),
    cpuScalingMode: CpuScalingModeSchema.optional(),
    enableNetworkMonitoring: z.boolean().default(false),
  }),
  {
    validations: [
      immutableOptional("disks", "disks"),
      immutableOptional("podResources", "podResources"),
      immutableOptional("enableAcceleration", "enableAcceleration"),
      immutableOptional("enableSSH", "enableSSH"),
      immutableOptional("initScript", "initScript"),
      immutableOptional("enableNetworkMonitoring", "enableNetworkMonitoring"),
      oneWay("cpuScalingMode"),
      oneWay("targetArchitecture"),
    ],
  },
);
/** VirtualMachine spec (defaults applied). */
export type VirtualMachineSpec = z.infer<typeof VirtualMachineSpecSchema>;

// ---------------------------------------------------------------------------------------------
// Status

/** `status` of a VirtualMachine. */
export const VirtualMachineStatusSchema = looseObject({
  phase: VmPhaseSchema.optional(),
  conditions: conditionsField().optional(),
  restartCount: int32().default(0),
  podName: z.string().optional(),
  podIP: z.string().optional(),
  extraNetIP: z.string().optional(),
  extraNetMask: z.string().optional(),
  node: z.string().optional(),
  cpus: milliCpuField().optional(),
  memorySize: bytesField().optional(),
  sshSecretName: z.string().optional(),
  tlsSecretName: z.string().optional(),
  currentRevision: RevisionWithTimeSchema.optional(),
});
/** VirtualMachine status. */
export type VirtualMachineStatus = z.infer<typeof VirtualMachineStatusSchema>;

/** API group/version of every NeonVM kind. */
export const NEONVM_API_VERSION = "vm.neon.tech/v1";
/** API group of every NeonVM kind. */
export const NEONVM_GROUP = "vm.neon.tech";

/** A whole VirtualMachine object. */
export const VirtualMachineSchema = looseObject({
  apiVersion: z.literal(NEONVM_API_VERSION),
  kind: z.literal("VirtualMachine"),
  metadata: ObjectMetaSchema,
  spec: VirtualMachineSpecSchema,
  status: VirtualMachineStatusSchema.optional(),
});
/** A parsed VirtualMachine (CPU in MilliCPU, memory in bytes). */
export type VirtualMachine = z.infer<typeof VirtualMachineSchema>;
/** A VirtualMachine as written on the wire (what the apiserver accepts). */
export type VirtualMachineWire = z.input<typeof VirtualMachineSchema>;

// ---------------------------------------------------------------------------------------------
// Encoding

/** A JSON value. */
export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/**
 * Returns `value` as JSON data with object keys sorted at every level and `undefined` members
 * dropped — the shape the apiserver itself serves (it writes unstructured objects key-sorted).
 */
export function sortKeysDeep(value: unknown): Json {
  if (Array.isArray(value)) return value.map((v) => sortKeysDeep(v === undefined ? null : v));
  if (value !== null && typeof value === "object") {
    const out: { [k: string]: Json } = {};
    for (const k of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[k];
      if (v !== undefined) out[k] = sortKeysDeep(v);
    }
    return out;
  }
  if (typeof value === "number" || typeof value === "string" || typeof value === "boolean") {
    return value;
  }
  return null;
}

function encodeCpus(c: Cpus): Record<string, unknown> {
  return {
    ...c,
    min: encodeMilliCpu(c.min),
    max: encodeMilliCpu(c.max),
    use: encodeMilliCpu(c.use),
  };
}

function encodeDisk(d: Disk): Record<string, unknown> {
  const out: Record<string, unknown> = { ...d };
  if (d.emptyDisk) out.emptyDisk = { ...d.emptyDisk, size: formatBinarySi(d.emptyDisk.size) };
  if (d.tmpfs) out.tmpfs = { ...d.tmpfs, size: formatBinarySi(d.tmpfs.size) };
  return out;
}

/** Wire JSON (unsorted) of a guest: MilliCPU and byte quantities re-encoded. */
function encodeGuest(g: Guest): Record<string, unknown> {
  const out: Record<string, unknown> = {
    ...g,
    cpus: encodeCpus(g.cpus),
    memorySlotSize: formatBinarySi(g.memorySlotSize),
    rootDisk: g.rootDisk.size === undefined
      ? g.rootDisk
      : { ...g.rootDisk, size: formatBinarySi(g.rootDisk.size) },
  };
  if (g.settings?.swap !== undefined) {
    out.settings = { ...g.settings, swap: formatBinarySi(g.settings.swap) };
  }
  return out;
}

/** Wire JSON of a spec, keys sorted like the apiserver's. */
export function encodeVirtualMachineSpec(spec: VirtualMachineSpec): Json {
  const out: Record<string, unknown> = { ...spec, guest: encodeGuest(spec.guest) };
  if (spec.disks) out.disks = spec.disks.map(encodeDisk);
  if (spec.overcommit) out.overcommit = encodeOvercommit(spec.overcommit);
  return sortKeysDeep(out);
}

/** Wire JSON of overcommit factors (quantity strings, `"500m"`, `"2"`). */
export function encodeOvercommit(o: Overcommit): Record<string, unknown> {
  const out: Record<string, unknown> = { ...o };
  if (o.cpu !== undefined) out.cpu = formatMilliCpu(o.cpu);
  if (o.memory !== undefined) out.memory = formatMilliCpu(o.memory);
  return out;
}

/** Wire JSON of a status, keys sorted like the apiserver's. */
export function encodeVirtualMachineStatus(status: VirtualMachineStatus): Json {
  const out: Record<string, unknown> = { ...status };
  if (status.cpus !== undefined) out.cpus = encodeMilliCpu(status.cpus);
  if (status.memorySize !== undefined) out.memorySize = formatBinarySi(status.memorySize);
  return sortKeysDeep(out);
}

/**
 * Wire JSON of a whole VirtualMachine: CPU as MilliCPU (`2`, `"250m"`), memory as binary-SI
 * strings, unknown fields kept, keys sorted. `encode(parse(x))` equals `x` for any object the
 * apiserver returns in canonical form; non-canonical quantities (`"1024Mi"`, `"0.5"`) come back
 * canonical (`"1Gi"`, `"500m"`), as with the reference's Go types.
 */
export function encodeVirtualMachine(vm: VirtualMachine): Json {
  const out: Record<string, unknown> = { ...vm, spec: encodeVirtualMachineSpec(vm.spec) };
  if (vm.status !== undefined) out.status = encodeVirtualMachineStatus(vm.status);
  return sortKeysDeep(out);
}

/** Alias of {@linkcode encodeVirtualMachine}. */
export const toWire: (vm: VirtualMachine) => Json = encodeVirtualMachine;

// ---------------------------------------------------------------------------------------------
// Helpers

/** Bytes of memory for `slots` slots of the guest's slot size. */
export function memoryBytesForSlots(guest: Pick<Guest, "memorySlotSize">, slots: number): number {
  return guest.memorySlotSize * slots;
}

/** Memory in use: `memorySlots.use × memorySlotSize`, in bytes. */
export function memoryUseBytes(vm: { spec: { guest: Guest } }): number {
  return vm.spec.guest.memorySlots.use * vm.spec.guest.memorySlotSize;
}

/** Memory bounds in bytes: `{min, max, use}` × slot size. */
export function memoryBoundsBytes(guest: Guest): { min: number; max: number; use: number } {
  const s = guest.memorySlotSize;
  return {
    min: guest.memorySlots.min * s,
    max: guest.memorySlots.max * s,
    use: guest.memorySlots.use * s,
  };
}

/** CPU in use (`spec.guest.cpus.use`), in MilliCPU. */
export function cpuUseMilli(vm: { spec: { guest: Guest } }): MilliCpu {
  return vm.spec.guest.cpus.use;
}

/** `namespace/name` of an object, for logs and error messages. */
export function objectKey(obj: { metadata: ObjectMeta }): string {
  return `${obj.metadata.namespace ?? ""}/${obj.metadata.name ?? ""}`;
}

const ALIVE: ReadonlySet<VmPhase> = new Set(["Running", "PreMigrating", "Migrating", "Scaling"]);

/** The reference's `IsAlive()`: Running, PreMigrating, Migrating or Scaling. */
export function isAlivePhase(phase: VmPhase | undefined): boolean {
  return phase !== undefined && ALIVE.has(phase);
}

/**
 * The reference's `Cleanup()` on restart: clears podName, podIP, node, cpus and memorySize; keeps
 * phase, restartCount, conditions, IPs and secret names.
 */
export function statusAfterPodCleanup(status: VirtualMachineStatus): VirtualMachineStatus {
  const { podName: _p, podIP: _i, node: _n, cpus: _c, memorySize: _m, ...rest } = status;
  return rest;
}

/** Finds a condition by type. */
export function findCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/**
 * `meta.SetStatusCondition`: adds or updates `cond`; `lastTransitionTime` changes only when the
 * status changes (it is set to `nowText`, an RFC 3339 time, in that case). Returns a new list.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  cond: Omit<Condition, "lastTransitionTime">,
  nowText: string,
): Condition[] {
  const list = [...(conditions ?? [])];
  const i = list.findIndex((c) => c.type === cond.type);
  const old = i >= 0 ? list[i] : undefined;
  const lastTransitionTime = old !== undefined && old.status === cond.status
    ? old.lastTransitionTime
    : nowText;
  const next: Condition = { ...old, ...cond, lastTransitionTime };
  if (i >= 0) list[i] = next;
  else list.push(next);
  return list;
}

// ---------------------------------------------------------------------------------------------
// The admission rules (§2.7) as pure functions; the CRD states the same rules in CEL.

/** A rule violation: the field path (from the object root) and the message. */
export interface Problem {
  /** Dotted path, e.g. `spec.guest.cpus.use`. */
  readonly path: string;
  /** Message naming the field. */
  readonly message: string;
}

/** Create-time rules (also checked on update): bounds, slot size, reserved names, disk sources. */
export function virtualMachineProblems(spec: VirtualMachineSpec): Problem[] {
  const out: Problem[] = [];
  const g = spec.guest;
  if (g.cpus.use < g.cpus.min) {
    out.push({
      path: "spec.guest.cpus.use",
      message: "guest.cpus.use must be greater than or equal to guest.cpus.min",
    });
  }
  if (g.cpus.use > g.cpus.max) {
    out.push({
      path: "spec.guest.cpus.use",
      message: "guest.cpus.use must be less than or equal to guest.cpus.max",
    });
  }
  if (g.memorySlots.use < g.memorySlots.min) {
    out.push({
      path: "spec.guest.memorySlots.use",
      message: "guest.memorySlots.use must be greater than or equal to guest.memorySlots.min",
    });
  }
  if (g.memorySlots.use > g.memorySlots.max) {
    out.push({
      path: "spec.guest.memorySlots.use",
      message: "guest.memorySlots.use must be less than or equal to guest.memorySlots.max",
    });
  }
  if (g.memorySlotSize <= 0 || g.memorySlotSize % VIRTIO_MEM_BLOCK_BYTES !== 0) {
    out.push({
      path: "spec.guest.memorySlotSize",
      message:
        "guest.memorySlotSize invalid for use with virtio-mem: must be a positive multiple of 8Mi",
    });
  }
  g.ports?.forEach((p, i) => {
    if (p.name === "qmp") {
      out.push({
        path: `spec.guest.ports[${i}].name`,
        message: "guest.ports[].name: 'qmp' is reserved",
      });
    }
  });
  spec.disks?.forEach((d, i) => {
    if (RESERVED_DISK_NAMES_LIST.includes(d.name)) {
      out.push({
        path: `spec.disks[${i}].name`,
        message: "disks[].name is reserved for the runner's own use",
      });
    }
    const sources = [d.emptyDisk, d.configMap, d.secret, d.tmpfs].filter((s) => s !== undefined);
    if (sources.length !== 1) {
      out.push({
        path: `spec.disks[${i}]`,
        message: "disks[]: exactly one of emptyDisk, configMap, secret, tmpfs must be set",
      });
    }
  });
  return out;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(sortKeysDeep(a)) === JSON.stringify(sortKeysDeep(b));
}

/** Update-time rules: immutable and one-way fields, then the create-time rules on `next`. */
export function virtualMachineUpdateProblems(
  prev: VirtualMachineSpec,
  next: VirtualMachineSpec,
): Problem[] {
  const out: Problem[] = [];
  const immutable: [string, unknown, unknown][] = [
    ["guest.cpus.min", prev.guest.cpus.min, next.guest.cpus.min],
    ["guest.cpus.max", prev.guest.cpus.max, next.guest.cpus.max],
    ["guest.memorySlots.min", prev.guest.memorySlots.min, next.guest.memorySlots.min],
    ["guest.memorySlots.max", prev.guest.memorySlots.max, next.guest.memorySlots.max],
    ["guest.ports", prev.guest.ports, next.guest.ports],
    ["guest.rootDisk", prev.guest.rootDisk, next.guest.rootDisk],
    ["guest.command", prev.guest.command, next.guest.command],
    ["guest.args", prev.guest.args, next.guest.args],
    ["guest.env", prev.guest.env, next.guest.env],
    ["guest.settings", prev.guest.settings, next.guest.settings],
    ["disks", prev.disks, next.disks],
    ["podResources", prev.podResources, next.podResources],
    ["enableAcceleration", prev.enableAcceleration, next.enableAcceleration],
    ["enableSSH", prev.enableSSH, next.enableSSH],
    ["initScript", prev.initScript, next.initScript],
    ["enableNetworkMonitoring", prev.enableNetworkMonitoring, next.enableNetworkMonitoring],
  ];
  for (const [name, a, b] of immutable) {
    if (!sameJson(a, b)) out.push({ path: `spec.${name}`, message: `${name} is immutable` });
  }
  const oneWayFields: [string, unknown, unknown][] = [
    ["cpuScalingMode", prev.cpuScalingMode, next.cpuScalingMode],
    ["targetArchitecture", prev.targetArchitecture, next.targetArchitecture],
  ];
  for (const [name, a, b] of oneWayFields) {
    if (a !== undefined && a !== b) {
      out.push({
        path: `spec.${name}`,
        message: `${name} is not allowed to be changed once it's set`,
      });
    }
  }
  return [...out, ...virtualMachineProblems(next)];
}
