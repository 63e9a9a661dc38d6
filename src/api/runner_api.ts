/**
 * Wire types of the neonvm-runner HTTP API (reference §1.5, §6.5), served on `spec.runnerPort`
 * (default 25183) inside the runner pod and called by the controller: `GET /cpu_current` and
 * `POST /cpu_change` carry `{"VCPUs": <MilliCPU>}` (capitalised key; whole CPUs as a JSON integer,
 * else `"1500m"`), `GET /ready` is the readiness probe. Also the runner's command-line contract
 * (flag names, the gzip+base64 spec/status encoding) so the controller and runner share it.
 * Pure: no I/O.
 * @module
 */
import { z } from "zod";
import { encodeMilliCpu, type MilliCpu, MilliCpuSchema } from "./quantity.ts";

/** Default runner API port (`spec.runnerPort`). */
export const RUNNER_PORT = 25183;
/** Path: current CPU amount. */
export const RUNNER_PATH_CPU_CURRENT = "/cpu_current";
/** Path: change the CPU amount. */
export const RUNNER_PATH_CPU_CHANGE = "/cpu_change";
/** Path: readiness. */
export const RUNNER_PATH_READY = "/ready";
/** Timeout the controller uses for runner calls (reference: 5 s). */
export const RUNNER_CALL_TIMEOUT_MS = 5_000;
/** Port QEMU listens on for an incoming migration (`-incoming tcp:0:20187`). */
export const MIGRATION_PORT = 20187;

/** Body of `POST /cpu_change` and reply of `GET /cpu_current`: `{"VCPUs": <MilliCPU>}`. */
export const VCpuChangeSchema = z.object({ VCPUs: MilliCpuSchema });
/** Decoded `{VCPUs}` (MilliCPU). */
export type VCpuChange = z.infer<typeof VCpuChangeSchema>;
/** Same shape for `/cpu_current` (the reference's `VCPUCgroup`). */
export const VCpuCurrentSchema = VCpuChangeSchema;

/** Encodes `{VCPUs}` exactly as the reference (`2`, `"1500m"`). */
export function encodeVCpus(milliCpu: MilliCpu): { VCPUs: number | string } {
  return { VCPUs: encodeMilliCpu(milliCpu) };
}

/** How the guest's CPU count is changed (reference `-cpu-scaling-mode`). */
export const RunnerCpuScalingModeSchema = z.enum(["QmpScaling", "SysfsScaling"]);
/** CPU scaling mode. */
export type RunnerCpuScalingMode = z.infer<typeof RunnerCpuScalingModeSchema>;

/** Runner flags the controller passes (the reference's names; `-flag value` or `--flag=value`). */
export const RUNNER_FLAGS = {
  vmSpec: "vmspec",
  vmStatus: "vmstatus",
  kernelPath: "kernelpath",
  appendKernelCmdline: "appendKernelCmdline",
  skipCgroupManagement: "skip-cgroup-management",
  qemuDiskCacheSettings: "qemu-disk-cache-settings",
  memhpAutoMovableRatio: "memhp-auto-movable-ratio",
  cpuScalingMode: "cpu-scaling-mode",
  useVirtioConsole: "use-virtio-console",
} as const;

/** Environment variable naming the runner pod (required). */
export const RUNNER_ENV_POD_NAME = "K8S_POD_NAME";
/** Environment variable set to `true` on migration target pods. */
export const RUNNER_ENV_RECEIVE_MIGRATION = "RECEIVE_MIGRATION";

async function pipeBytes(data: Uint8Array, stream: GenericTransformStream): Promise<Uint8Array> {
  const out = new Response(new Blob([data as BlobPart]).stream().pipeThrough(stream));
  return new Uint8Array(await out.arrayBuffer());
}

function toBase64(bytes: Uint8Array): string {
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

/**
 * Encodes a JSON value as the runner's `-vmspec` / `-vmstatus` flag value: gzip, then standard
 * base64 (the reference's encoding). Pass the wire JSON (`encodeVirtualMachineSpec(spec)`).
 */
export async function encodeRunnerFlagJson(value: unknown): Promise<string> {
  const raw = new TextEncoder().encode(JSON.stringify(value));
  return toBase64(await pipeBytes(raw, new CompressionStream("gzip")));
}

/** Decodes a `-vmspec` / `-vmstatus` value back to JSON (throws on bad base64, gzip or JSON). */
export async function decodeRunnerFlagJson(encoded: string): Promise<unknown> {
  const bin = atob(encoded.trim());
  const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  const raw = await pipeBytes(bytes, new DecompressionStream("gzip"));
  return JSON.parse(new TextDecoder().decode(raw));
}
