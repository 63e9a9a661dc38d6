/**
 * The vm-monitor's arithmetic (reference §1.3.1 and the neon `vm_monitor` it describes): how big
 * the Postgres file cache (LFC) should be for a given amount of memory, what the workload cgroup's
 * memory.high / memory.max become, and the usage threshold above which the monitor asks the agent
 * for more memory. Pure: no I/O, no clocks.
 * @module
 */
import { MiB } from "../../api/quantity.ts";

/** Tunables of the sizing rules; {@linkcode DEFAULT_SIZING} holds the reference's values. */
export interface SizingConfig {
  /** Memory the guest kernel keeps for itself, subtracted from an agent-given total. */
  readonly sysBufferBytes: number;
  /** Fraction of the limit kept free: the upscale threshold is `limit × (1 − this)`. */
  readonly minOverheadFraction: number;
  /** A downscale needs `threshold(new) ≥ usage + this`. */
  readonly downscaleBufferBytes: number;
  /** memory.high sits this far below memory.max (older reference `oom_buffer_bytes`). */
  readonly oomBufferBytes: number;
  /** LFC target as a fraction of memory (`resource_multiplier`). */
  readonly lfcResourceMultiplier: number;
  /** Memory that must remain after the LFC (`min_remaining_after_cache`). */
  readonly lfcMinRemainingBytes: number;
  /** Of each byte above the minimum, `1/(1+this)` goes to the LFC (`spread_factor`). */
  readonly lfcSpreadFactor: number;
}

/** The reference's constants (in-memory LFC). */
export const DEFAULT_SIZING: SizingConfig = {
  sysBufferBytes: 100 * MiB,
  minOverheadFraction: 0.15,
  downscaleBufferBytes: 100 * MiB,
  oomBufferBytes: 100 * MiB,
  lfcResourceMultiplier: 0.75,
  lfcMinRemainingBytes: 640 * MiB,
  lfcSpreadFactor: 0.1,
};

/**
 * Desired LFC size for `totalBytes` of memory: `floor_MiB(min((total − 640 MiB)/1.1,
 * total × 0.75))`, or 0 when total ≤ 640 MiB.
 */
export function lfcSizeBytes(cfg: SizingConfig, totalBytes: number): number {
  const available = totalBytes - cfg.lfcMinRemainingBytes;
  if (available <= 0) return 0;
  const fromSpread = Math.max(0, Math.floor(available / (1 + cfg.lfcSpreadFactor)));
  const fromShare = Math.floor(totalBytes * cfg.lfcResourceMultiplier);
  return Math.floor(Math.min(fromSpread, fromShare) / MiB) * MiB;
}

/** Memory usable by the workload when the agent says the VM has `grantedBytes`. */
export function usableBytes(cfg: SizingConfig, grantedBytes: number): number {
  return Math.max(0, grantedBytes - cfg.sysBufferBytes);
}

/** Upscale-request threshold for a limit: `limit × (1 − 0.15)`, whole bytes. */
export function thresholdBytes(cfg: SizingConfig, limitBytes: number): number {
  return Math.floor(limitBytes * (1 - cfg.minOverheadFraction));
}

/** What the monitor applies for one memory size. */
export interface Sizing {
  /** Memory the workload may use (agent total minus the kernel's buffer, or MemTotal). */
  readonly usableBytes: number;
  /** LFC size in bytes (a whole number of MiB); 0 when the LFC is not managed. */
  readonly lfcBytes: number;
  /** memory.max for the workload cgroup, when the monitor manages limits. */
  readonly memoryMaxBytes: number | undefined;
  /** memory.high for the workload cgroup, when the monitor manages limits. */
  readonly memoryHighBytes: number | undefined;
  /** The limit the upscale threshold is a fraction of: memory.high if managed, else usable. */
  readonly limitBytes: number;
  /** Average non-reclaimable usage at or above which the monitor requests upscale. */
  readonly thresholdBytes: number;
}

/** Which parts of the guest the monitor manages. */
export interface Managed {
  /** A workload cgroup is watched. */
  readonly cgroup: boolean;
  /** memory.high / memory.max of that cgroup are written (older reference behaviour). */
  readonly cgroupLimits: boolean;
  /** The Postgres LFC is sized (`--pgconnstr` given). */
  readonly lfc: boolean;
}

/**
 * Sizing for `usable` bytes of workload memory with an LFC of `lfcBytes` (the size actually
 * applied, which Postgres may cap). As in the older reference: memory.max = usable − LFC (an
 * in-memory LFC is charged to the same memory), memory.high = memory.max − 100 MiB.
 */
export function sizingFor(
  cfg: SizingConfig,
  managed: Managed,
  usable: number,
  lfcBytes: number,
): Sizing {
  const lfc = managed.lfc ? lfcBytes : 0;
  const available = Math.max(0, usable - lfc);
  const limits = managed.cgroup && managed.cgroupLimits;
  const memoryMaxBytes = limits ? available : undefined;
  const memoryHighBytes = limits ? Math.max(0, available - cfg.oomBufferBytes) : undefined;
  const limitBytes = memoryHighBytes ?? usable;
  return {
    usableBytes: usable,
    lfcBytes: lfc,
    memoryMaxBytes,
    memoryHighBytes,
    limitBytes,
    thresholdBytes: thresholdBytes(cfg, limitBytes),
  };
}

/** The sizing the monitor aims for when `usable` bytes are available (LFC at its target). */
export function targetSizing(cfg: SizingConfig, managed: Managed, usable: number): Sizing {
  return sizingFor(cfg, managed, usable, managed.lfc ? lfcSizeBytes(cfg, usable) : 0);
}

/** Bytes as whole MiB, rounded down, for status strings. */
export function toMiB(bytes: number): number {
  return Math.floor(bytes / MiB);
}
