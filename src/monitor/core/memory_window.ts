/**
 * A rolling window of cgroup memory samples (reference: 100 ms samples, mean of the last ≤ 5, so
 * 500 ms). Immutable: every operation returns a new window. Pure: no I/O, no clocks.
 * @module
 */

/** One reading of the workload cgroup. */
export interface MemorySample {
  /** When it was taken, epoch ms. */
  readonly atMs: number;
  /** `active_anon + inactive_anon` from memory.stat: memory the kernel cannot reclaim. */
  readonly nonReclaimableBytes: number;
  /** memory.current (includes page cache); informational. */
  readonly currentBytes: number;
}

/** The most recent samples, oldest first, at most `capacity` of them. */
export interface MemoryWindow {
  /** How many samples the mean covers. */
  readonly capacity: number;
  /** Samples, oldest first. */
  readonly samples: readonly MemorySample[];
}

/** An empty window holding up to `capacity` samples. */
export function emptyWindow(capacity: number): MemoryWindow {
  return { capacity: Math.max(1, Math.floor(capacity)), samples: [] };
}

/** Adds a sample, dropping the oldest beyond capacity. Out-of-order samples are ignored. */
export function addSample(window: MemoryWindow, sample: MemorySample): MemoryWindow {
  const last = window.samples.at(-1);
  if (last !== undefined && sample.atMs < last.atMs) return window;
  const samples = [...window.samples, sample].slice(-window.capacity);
  return { capacity: window.capacity, samples };
}

/** Summary of a window: the mean non-reclaimable usage, sample count, span and newest time. */
export interface WindowSummary {
  /** Mean of `nonReclaimableBytes` over the window (floor), 0 when empty. */
  readonly avgNonReclaimableBytes: number;
  /** Number of samples in the mean. */
  readonly count: number;
  /** Time between the oldest and newest sample, ms. */
  readonly spanMs: number;
  /** Time of the newest sample, or undefined when empty. */
  readonly newestAtMs: number | undefined;
  /** memory.current of the newest sample, 0 when empty. */
  readonly latestCurrentBytes: number;
}

/** Summarises a window. */
export function summarize(window: MemoryWindow): WindowSummary {
  const n = window.samples.length;
  const first = window.samples[0];
  const last = window.samples.at(-1);
  if (n === 0 || first === undefined || last === undefined) {
    return {
      avgNonReclaimableBytes: 0,
      count: 0,
      spanMs: 0,
      newestAtMs: undefined,
      latestCurrentBytes: 0,
    };
  }
  let sum = 0;
  for (const s of window.samples) sum += s.nonReclaimableBytes;
  return {
    avgNonReclaimableBytes: Math.floor(sum / n),
    count: n,
    spanMs: last.atMs - first.atMs,
    newestAtMs: last.atMs,
    latestCurrentBytes: last.currentBytes,
  };
}
