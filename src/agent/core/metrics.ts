/**
 * Turns parsed Prometheus families into the agent's SystemMetrics and LfcMetrics (reference §1.4).
 * Accepts both vector's `host_*` names and node_exporter's `node_*` names (DECISIONS D2).
 * Returns values or an error message; never throws. Pure: no I/O.
 * @module
 */
import { MiB } from "../../api/quantity.ts";
import type { PromFamily, PromParse } from "./prom_text.ts";

/** Load and memory figures from the VM (port 9100). */
export interface SystemMetrics {
  /** 1-minute load average. */
  readonly loadAverage1Min: number;
  /** 5-minute load average. */
  readonly loadAverage5Min: number;
  /** `total − available + 100 MiB`, bytes. */
  readonly memoryUsageBytes: number;
  /** Page cache, bytes. */
  readonly memoryCachedBytes: number;
}

/** Local file cache figures from the compute's sql-exporter (port 9499). */
export interface LfcMetrics {
  /** Cache hits. */
  readonly cacheHitsTotal: number;
  /** Cache misses. */
  readonly cacheMissesTotal: number;
  /** Cache writes. */
  readonly cacheWritesTotal: number;
  /** Working-set estimates in 8 KiB pages; index i is the (i+1)-minute window. */
  readonly approximateWorkingSetSizeBuckets: readonly number[];
}

/** A value or a reason why there is none. */
export type Extracted<T> = { ok: true; value: T } | { ok: false; error: string };

/** Kernel memory not visible in `total − available`, added as the reference does. */
export const MEMORY_USAGE_FUDGE_BYTES = 100 * MiB;

function single(fams: Map<string, PromFamily>, names: readonly string[]): Extracted<number> {
  for (const name of names) {
    const f = fams.get(name);
    if (f === undefined) continue;
    if (f.type !== undefined && f.type !== "gauge" && f.type !== "untyped") {
      return { ok: false, error: `${name}: expected a gauge, got ${f.type}` };
    }
    if (f.samples.length !== 1) {
      return { ok: false, error: `${name}: expected 1 sample, got ${f.samples.length}` };
    }
    const v = f.samples[0]!.value;
    if (!Number.isFinite(v)) return { ok: false, error: `${name}: value is not finite` };
    return { ok: true, value: v };
  }
  return { ok: false, error: `missing metric ${names.join(" or ")}` };
}

/** Extracts SystemMetrics from a scrape of the VM's metrics exporter. */
export function extractSystemMetrics(p: PromParse): Extracted<SystemMetrics> {
  const load1 = single(p.families, ["host_load1", "node_load1"]);
  const load5 = single(p.families, ["host_load5", "node_load5"]);
  const total = single(p.families, ["host_memory_total_bytes", "node_memory_MemTotal_bytes"]);
  const avail = single(p.families, [
    "host_memory_available_bytes",
    "node_memory_MemAvailable_bytes",
  ]);
  const cached = single(p.families, ["host_memory_cached_bytes", "node_memory_Cached_bytes"]);
  for (const r of [load1, load5, total, avail, cached]) if (!r.ok) return r;
  if (!load1.ok || !load5.ok || !total.ok || !avail.ok || !cached.ok) {
    return { ok: false, error: "unreachable" };
  }
  if (load1.value < 0 || load5.value < 0 || total.value < 0 || avail.value < 0) {
    return { ok: false, error: "negative load or memory value" };
  }
  return {
    ok: true,
    value: {
      loadAverage1Min: load1.value,
      loadAverage5Min: load5.value,
      memoryUsageBytes: Math.max(0, total.value - avail.value) + MEMORY_USAGE_FUDGE_BYTES,
      memoryCachedBytes: Math.max(0, cached.value),
    },
  };
}

/** Extracts LfcMetrics; windows must be exactly 60, 120, 180… seconds or the scrape is rejected. */
export function extractLfcMetrics(p: PromParse): Extracted<LfcMetrics> {
  const hits = single(p.families, ["lfc_hits"]);
  const misses = single(p.families, ["lfc_misses"]);
  const writes = single(p.families, ["lfc_writes"]);
  if (!hits.ok) return hits;
  if (!misses.ok) return misses;
  if (!writes.ok) return writes;
  const f = p.families.get("lfc_approximate_working_set_size_windows");
  if (f === undefined) {
    return { ok: false, error: "missing lfc_approximate_working_set_size_windows" };
  }
  const windows: { sec: number; value: number }[] = [];
  for (const s of f.samples) {
    const raw = s.labels["duration_seconds"];
    const sec = raw === undefined ? NaN : Number(raw);
    if (!Number.isInteger(sec)) return { ok: false, error: `bad duration_seconds label ${raw}` };
    if (!Number.isFinite(s.value) || s.value < 0) {
      return { ok: false, error: "working set value is not a finite non-negative number" };
    }
    windows.push({ sec, value: s.value });
  }
  windows.sort((a, b) => a.sec - b.sec);
  for (let i = 0; i < windows.length; i++) {
    if (windows[i]!.sec !== 60 * (i + 1)) {
      return { ok: false, error: `working set windows must be 60, 120, …; got ${windows[i]!.sec}` };
    }
  }
  return {
    ok: true,
    value: {
      cacheHitsTotal: hits.value,
      cacheMissesTotal: misses.value,
      cacheWritesTotal: writes.value,
      approximateWorkingSetSizeBuckets: windows.map((w) => w.value),
    },
  };
}
