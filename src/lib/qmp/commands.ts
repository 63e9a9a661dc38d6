/**
 * Typed QMP commands used by NeonVM: vCPU hotplug (`query-hotpluggable-cpus`, `query-cpus-fast`,
 * `device_add`/`device_del`), virtio-mem sizing (`qom-get`/`qom-set` of `requested-size`,
 * `query-memory-size-summary`, `query-memory-devices`), lifecycle (`query-status`,
 * `system_powerdown`, `quit`) and migration. Each reply is parsed with zod. It must not decide
 * policy (how many CPUs to plug); callers do.
 * @module
 */
import { z } from "zod";
import { type ExecuteOptions, type QmpClient, QmpCommandError } from "./client.ts";
import { InvariantError, TimeoutError } from "../errors.ts";

/** The QOM id of the virtio-mem device the runner creates (reference: `vm0`). */
export const VIRTIO_MEM_DEVICE_ID = "vm0";
/** QOM path prefix of vCPUs added with `device_add` (boot vCPUs cannot be removed). */
export const HOTPLUGGED_CPU_PATH_PREFIX = "/machine/peripheral/cpu";

const NonNegInt = z.number().int().nonnegative();

/** One entry of `query-hotpluggable-cpus`. `qom-path` is present when the slot is plugged. */
export const HotpluggableCpuSchema = z.object({
  type: z.string(),
  "vcpus-count": NonNegInt,
  props: z.object({
    "socket-id": NonNegInt.optional(),
    "die-id": NonNegInt.optional(),
    "core-id": NonNegInt.optional(),
    "thread-id": NonNegInt.optional(),
    "node-id": NonNegInt.optional(),
  }).loose(),
  "qom-path": z.string().optional(),
});
/** A hot-pluggable vCPU slot. */
export type HotpluggableCpu = z.infer<typeof HotpluggableCpuSchema>;

/** One entry of `query-cpus-fast`. */
export const CpuInfoFastSchema = z.object({
  "cpu-index": NonNegInt,
  "qom-path": z.string(),
  "thread-id": z.number().int(),
  props: z.record(z.string(), z.unknown()).optional(),
  target: z.string().optional(),
}).loose();
/** A running vCPU. */
export type CpuInfoFast = z.infer<typeof CpuInfoFastSchema>;

/** Reply of `query-memory-size-summary`. */
export const MemorySizeSummarySchema = z.object({
  "base-memory": NonNegInt,
  "plugged-memory": NonNegInt.optional(),
});
/** Base (boot) memory and hot-plugged memory, bytes. */
export type MemorySizeSummary = z.infer<typeof MemorySizeSummarySchema>;

/** One entry of `query-memory-devices` (only the fields we use are checked). */
export const MemoryDeviceSchema = z.object({
  type: z.string(),
  data: z.object({
    id: z.string().optional(),
    size: NonNegInt.optional(),
    "requested-size": NonNegInt.optional(),
    "max-size": NonNegInt.optional(),
    "block-size": NonNegInt.optional(),
  }).loose(),
});
/** A memory device (DIMM, virtio-mem, ...). */
export type MemoryDevice = z.infer<typeof MemoryDeviceSchema>;

/** Reply of `query-status`. */
export const VmStatusSchema = z.object({
  running: z.boolean(),
  status: z.string(),
  singlestep: z.boolean().optional(),
}).loose();
/** Run state of the VM. */
export type VmStatus = z.infer<typeof VmStatusSchema>;

/** Reply of `query-migrate` (fields present depend on the state). */
export const MigrationInfoSchema = z.object({
  status: z.string().optional(),
  "total-time": z.number().optional(),
  "expected-downtime": z.number().optional(),
  downtime: z.number().optional(),
  "setup-time": z.number().optional(),
  ram: z.object({
    transferred: z.number(),
    remaining: z.number(),
    total: z.number(),
  }).loose().optional(),
  compression: z.object({
    "compressed-size": z.number().optional(),
    "compression-rate": z.number().optional(),
  }).loose().optional(),
  "error-desc": z.string().optional(),
}).loose();
/** Migration progress. */
export type MigrationInfo = z.infer<typeof MigrationInfoSchema>;

const EmptyReply = z.unknown();

/** `query-hotpluggable-cpus`. */
export function queryHotpluggableCpus(
  qmp: QmpClient,
  options?: ExecuteOptions,
): Promise<HotpluggableCpu[]> {
  return qmp.call("query-hotpluggable-cpus", undefined, z.array(HotpluggableCpuSchema), options);
}

/** `query-cpus-fast`. */
export function queryCpusFast(qmp: QmpClient, options?: ExecuteOptions): Promise<CpuInfoFast[]> {
  return qmp.call("query-cpus-fast", undefined, z.array(CpuInfoFastSchema), options);
}

/** Summary of vCPU slots: how many are plugged, which are free, which can be removed. */
export interface CpuSlots {
  /** Slots with a vCPU (boot or hot-plugged). */
  readonly plugged: readonly HotpluggableCpu[];
  /** Empty slots, lowest core first. */
  readonly empty: readonly HotpluggableCpu[];
  /** Hot-plugged (removable) vCPUs, highest core first. */
  readonly removable: readonly HotpluggableCpu[];
}

function coreOf(c: HotpluggableCpu): number {
  return c.props["core-id"] ?? 0;
}

/** Classifies the slots of `query-hotpluggable-cpus`. Pure. */
export function classifyCpuSlots(slots: readonly HotpluggableCpu[]): CpuSlots {
  const plugged = slots.filter((s) => s["qom-path"] !== undefined);
  const empty = slots.filter((s) => s["qom-path"] === undefined)
    .sort((a, b) => coreOf(a) - coreOf(b));
  const removable = plugged
    .filter((s) => s["qom-path"]!.startsWith(HOTPLUGGED_CPU_PATH_PREFIX))
    .sort((a, b) => coreOf(b) - coreOf(a));
  return { plugged, empty, removable };
}

/** Returns how many vCPU slots currently hold a vCPU. */
export async function countPluggedCpus(qmp: QmpClient, options?: ExecuteOptions): Promise<number> {
  return classifyCpuSlots(await queryHotpluggableCpus(qmp, options)).plugged.length;
}

/**
 * Hot-adds one vCPU in the lowest free core slot (`device_add` with id `cpu<core>`, as the
 * reference names it). Returns the slot used, or `undefined` when every slot is full.
 * Why lowest: the reference takes the list's last empty entry, which QEMU happens to list lowest
 * core last; choosing explicitly does not depend on QEMU's list order.
 */
export async function plugCpu(
  qmp: QmpClient,
  options?: ExecuteOptions,
): Promise<HotpluggableCpu | undefined> {
  const { empty } = classifyCpuSlots(await queryHotpluggableCpus(qmp, options));
  const slot = empty[0];
  if (slot === undefined) return undefined;
  const core = coreOf(slot);
  await qmp.call(
    "device_add",
    {
      id: `cpu${core}`,
      driver: slot.type,
      "core-id": core,
      "socket-id": slot.props["socket-id"] ?? 0,
      "thread-id": slot.props["thread-id"] ?? 0,
    },
    EmptyReply,
    options,
  );
  return slot;
}

/**
 * Requests removal of the hot-plugged vCPU with the highest core (`device_del` by QOM path).
 * The guest completes the removal asynchronously (ACPI eject); poll the slots to see it gone.
 * Returns the slot, or `undefined` when no hot-plugged vCPU is left.
 */
export async function unplugCpu(
  qmp: QmpClient,
  options?: ExecuteOptions,
): Promise<HotpluggableCpu | undefined> {
  const { removable } = classifyCpuSlots(await queryHotpluggableCpus(qmp, options));
  const slot = removable[0];
  if (slot === undefined) return undefined;
  await qmp.call("device_del", { id: slot["qom-path"] }, EmptyReply, options);
  return slot;
}

/** `qom-get` of a property that holds an integer. */
export function qomGetNumber(
  qmp: QmpClient,
  path: string,
  property: string,
  options?: ExecuteOptions,
): Promise<number> {
  return qmp.call("qom-get", { path, property }, z.number(), options);
}

/** Reads the virtio-mem device's `requested-size`, bytes. */
export function getVirtioMemRequestedSize(
  qmp: QmpClient,
  options?: ExecuteOptions & { deviceId?: string },
): Promise<number> {
  return qomGetNumber(qmp, options?.deviceId ?? VIRTIO_MEM_DEVICE_ID, "requested-size", options);
}

/** Sets the virtio-mem device's `requested-size`, bytes (a multiple of its block size). */
export async function setVirtioMemRequestedSize(
  qmp: QmpClient,
  sizeBytes: number,
  options?: ExecuteOptions & { deviceId?: string },
): Promise<void> {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0) {
    throw new InvariantError(`virtio-mem requested-size must be a byte count, got ${sizeBytes}`);
  }
  await qmp.call(
    "qom-set",
    {
      path: options?.deviceId ?? VIRTIO_MEM_DEVICE_ID,
      property: "requested-size",
      value: sizeBytes,
    },
    EmptyReply,
    options,
  );
}

/** `query-memory-size-summary`: base + plugged memory, bytes. */
export function queryMemorySizeSummary(
  qmp: QmpClient,
  options?: ExecuteOptions,
): Promise<MemorySizeSummary> {
  return qmp.call("query-memory-size-summary", undefined, MemorySizeSummarySchema, options);
}

/** Total memory QEMU reports as present (base + plugged), bytes. */
export function totalMemoryBytes(summary: MemorySizeSummary): number {
  return summary["base-memory"] + (summary["plugged-memory"] ?? 0);
}

/** `query-memory-devices`. */
export function queryMemoryDevices(
  qmp: QmpClient,
  options?: ExecuteOptions,
): Promise<MemoryDevice[]> {
  return qmp.call("query-memory-devices", undefined, z.array(MemoryDeviceSchema), options);
}

/** Reply of `query-kvm`. */
export const KvmInfoSchema = z.object({ enabled: z.boolean(), present: z.boolean() });
/** Whether KVM is in use (`enabled`) and available (`present`). */
export type KvmInfo = z.infer<typeof KvmInfoSchema>;

/**
 * `query-kvm`. Callers use it to learn the accelerator: with TCG (`enabled: false`) QEMU 7.2
 * crashes (SIGSEGV) on any vCPU hot-add that follows a vCPU hot-remove, so vCPUs must not be
 * removed under TCG (measured on QEMU 7.2.22, see tests/runner/).
 */
export function queryKvm(qmp: QmpClient, options?: ExecuteOptions): Promise<KvmInfo> {
  return qmp.call("query-kvm", undefined, KvmInfoSchema, options);
}

/** `query-status`. */
export function queryStatus(qmp: QmpClient, options?: ExecuteOptions): Promise<VmStatus> {
  return qmp.call("query-status", undefined, VmStatusSchema, options);
}

/** `system_powerdown`: presses the ACPI power button; the guest decides how to shut down. */
export async function systemPowerdown(qmp: QmpClient, options?: ExecuteOptions): Promise<void> {
  await qmp.call("system_powerdown", undefined, EmptyReply, options);
}

/**
 * `quit`: QEMU exits immediately. The connection closes right after the reply, and sometimes
 * before it: QEMU may exit before the reply is read, so the peer hanging up or resetting the
 * connection while the command is in flight counts as success (QEMU is going away, which is what
 * was asked). A connection that was already closed before the call still fails.
 */
export async function quit(qmp: QmpClient, options?: ExecuteOptions): Promise<void> {
  if (qmp.closed) {
    await qmp.call("quit", undefined, EmptyReply, options); // Throws "connection is closed".
    return;
  }
  try {
    await qmp.call("quit", undefined, EmptyReply, options);
  } catch (error) {
    // Why: "Connection reset by peer" after `quit` made callers (a migration's source quit, the
    // controller test) report a failure for a QEMU that did exit as asked.
    if (qmp.closed && !(error instanceof QmpCommandError) && !(error instanceof TimeoutError)) {
      return;
    }
    throw error;
  }
}

/** A migration capability and whether it is on. */
export interface MigrationCapability {
  /** Capability name, e.g. `xbzrle`, `auto-converge`, `postcopy-ram`. */
  readonly capability: string;
  /** Enabled or not. */
  readonly state: boolean;
}

/** `migrate-set-capabilities`. */
export async function migrateSetCapabilities(
  qmp: QmpClient,
  capabilities: readonly MigrationCapability[],
  options?: ExecuteOptions,
): Promise<void> {
  await qmp.call("migrate-set-capabilities", { capabilities }, EmptyReply, options);
}

/** `migrate-set-parameters` (e.g. `max-bandwidth`, `xbzrle-cache-size`, `multifd-compression`). */
export async function migrateSetParameters(
  qmp: QmpClient,
  parameters: Readonly<Record<string, string | number | boolean>>,
  options?: ExecuteOptions,
): Promise<void> {
  await qmp.call("migrate-set-parameters", parameters, EmptyReply, options);
}

/** Options of `migrate`. */
export interface MigrateArgs {
  /** Destination, e.g. `tcp:10.0.0.5:20187`. */
  readonly uri: string;
  /** Incremental block migration (`inc`). */
  readonly inc?: boolean;
  /** Full block migration (`blk`). */
  readonly blk?: boolean;
}

/** `migrate`: starts migrating to `uri`; poll with {@linkcode queryMigrate}. */
export async function migrate(
  qmp: QmpClient,
  args: MigrateArgs,
  options?: ExecuteOptions,
): Promise<void> {
  const a: Record<string, unknown> = { uri: args.uri };
  if (args.inc !== undefined) a.inc = args.inc;
  if (args.blk !== undefined) a.blk = args.blk;
  await qmp.call("migrate", a, EmptyReply, options);
}

/** `migrate-start-postcopy`. */
export async function migrateStartPostcopy(
  qmp: QmpClient,
  options?: ExecuteOptions,
): Promise<void> {
  await qmp.call("migrate-start-postcopy", undefined, EmptyReply, options);
}

/** `query-migrate`. */
export function queryMigrate(qmp: QmpClient, options?: ExecuteOptions): Promise<MigrationInfo> {
  return qmp.call("query-migrate", undefined, MigrationInfoSchema, options);
}

/** `migrate_cancel`. */
export async function migrateCancel(qmp: QmpClient, options?: ExecuteOptions): Promise<void> {
  await qmp.call("migrate_cancel", undefined, EmptyReply, options);
}
