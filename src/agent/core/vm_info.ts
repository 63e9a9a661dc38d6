/**
 * Which VMs an agent manages (§3.1) and what it needs to know about each (`VmInfo`): bounds from
 * the spec or the `autoscaling.neon.tech/bounds` annotation, per-VM ScalingConfig from the
 * `autoscaling.neon.tech/config` annotation, the current revision, pod address and labels.
 * Returns values or an error message; never throws. Pure: no I/O.
 * @module
 */
import { ScalingConfigOverridesSchema, VmBoundsAnnotationSchema } from "../../api/agent_config.ts";
import { isAlivePhase, type VirtualMachine } from "../../api/virtualmachine.ts";
import type { VmInfo } from "./state.ts";

/** Label that turns autoscaling on for a VM. */
export const LABEL_AUTOSCALING_ENABLED = "autoscaling.neon.tech/enabled";
/** Annotation overriding the VM's min/max. */
export const ANNOTATION_BOUNDS = "autoscaling.neon.tech/bounds";
/** Annotation with per-VM ScalingConfig overrides. */
export const ANNOTATION_CONFIG = "autoscaling.neon.tech/config";
/** Label carrying the endpoint id (metrics labels, scaling events). */
export const LABEL_ENDPOINT_ID = "neon/endpoint-id";
/** Label carrying the project id (metrics labels). */
export const LABEL_PROJECT_ID = "neon/project-id";

const MIN_CPU_MILLI = 50;
const MAX_CPU_MILLI = 512_000;

/** True when this agent manages the VM (§3.1). */
export function isResponsible(
  vm: VirtualMachine,
  nodeName: string,
  schedulerName: string,
): boolean {
  const st = vm.status;
  return st !== undefined && st.node === nodeName && isAlivePhase(st.phase) &&
    st.phase !== "Migrating" && (st.podIP ?? "") !== "" &&
    vm.metadata.labels?.[LABEL_AUTOSCALING_ENABLED] === "true" &&
    vm.spec.schedulerName === schedulerName;
}

/** The runner key: the VM's pod `namespace/name`. */
export function runnerKey(vm: VirtualMachine): string {
  return `${vm.metadata.namespace ?? ""}/${vm.status?.podName ?? vm.metadata.name ?? ""}`;
}

/** A value or why there is none. */
export type Extracted<T> = { ok: true; value: T } | { ok: false; error: string };

function parseJsonAnnotation(text: string): Extracted<unknown> {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (e) {
    return { ok: false, error: `not JSON: ${e instanceof Error ? e.message : String(e)}` };
  }
}

/** Extracts VmInfo, applying the bounds and config annotations and the reference's checks. */
export function extractVmInfo(vm: VirtualMachine): Extracted<VmInfo> {
  const g = vm.spec.guest;
  const slot = g.memorySlotSize;
  let cpu = { min: g.cpus.min, max: g.cpus.max, use: g.cpus.use };
  let mem = {
    min: g.memorySlots.min * slot,
    max: g.memorySlots.max * slot,
    use: g.memorySlots.use * slot,
  };
  const ann = vm.metadata.annotations ?? {};
  const boundsText = ann[ANNOTATION_BOUNDS];
  if (boundsText !== undefined) {
    const j = parseJsonAnnotation(boundsText);
    if (!j.ok) return { ok: false, error: `annotation ${ANNOTATION_BOUNDS}: ${j.error}` };
    const b = VmBoundsAnnotationSchema.safeParse(j.value);
    if (!b.success) {
      return { ok: false, error: `annotation ${ANNOTATION_BOUNDS}: ${b.error.issues[0]?.message}` };
    }
    if (b.data.min.mem % slot !== 0 || b.data.max.mem % slot !== 0) {
      return {
        ok: false,
        error: `annotation ${ANNOTATION_BOUNDS}: memory bounds must be multiples of ${slot} bytes`,
      };
    }
    cpu = { ...cpu, min: b.data.min.cpu, max: b.data.max.cpu };
    mem = { ...mem, min: b.data.min.mem, max: b.data.max.mem };
  }
  let config;
  const cfgText = ann[ANNOTATION_CONFIG];
  if (cfgText !== undefined) {
    const j = parseJsonAnnotation(cfgText);
    if (!j.ok) return { ok: false, error: `annotation ${ANNOTATION_CONFIG}: ${j.error}` };
    const c = ScalingConfigOverridesSchema.safeParse(j.value);
    if (!c.success) {
      const i = c.error.issues[0];
      return {
        ok: false,
        error: `annotation ${ANNOTATION_CONFIG}: ${i?.path.join(".")}: ${i?.message}`,
      };
    }
    config = c.data;
  }
  for (const [what, v] of [["min", cpu.min], ["max", cpu.max]] as const) {
    if (v < MIN_CPU_MILLI || v > MAX_CPU_MILLI) {
      return { ok: false, error: `cpu ${what} ${v}m is outside [${MIN_CPU_MILLI}m, 512]` };
    }
  }
  if (cpu.min > cpu.max) return { ok: false, error: "cpu min is greater than max" };
  if (mem.min > mem.max) return { ok: false, error: "memory min is greater than max" };
  if (slot <= 0) return { ok: false, error: "memorySlotSize must be positive" };
  const rev = vm.status?.currentRevision?.revision;
  return {
    ok: true,
    value: {
      namespace: vm.metadata.namespace ?? "",
      name: vm.metadata.name ?? "",
      cpu,
      mem,
      slotSizeBytes: slot,
      config,
      currentRevision: rev === undefined ? undefined : { value: rev.value, flags: rev.flags },
    },
  };
}
