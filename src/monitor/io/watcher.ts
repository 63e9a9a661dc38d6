/**
 * The cgroup memory watcher loop: every `intervalMs` (reference: 100 ms) read the workload
 * cgroup and hand the reading to the service. A failed read is reported and the loop goes on (the
 * window just gets no sample, so stale stats make downscales fail, as in the reference).
 * Must not decide anything.
 * @module
 */
import type { Clock } from "../../lib/clock.ts";
import type { CgroupReading, WorkloadCgroup } from "./cgroup.ts";

/** Where readings go. */
export interface SampleSink {
  /** A successful reading. */
  recordSample(reading: CgroupReading): void;
  /** A failed reading. */
  recordSampleError(error: unknown): void;
}

/** Runs the watcher until `signal` aborts; ticks are on a fixed grid, missed ticks skipped. */
export async function watchCgroup(
  cgroup: WorkloadCgroup,
  sink: SampleSink,
  clock: Clock,
  signal: AbortSignal,
  intervalMs = 100,
): Promise<void> {
  let next = clock.now();
  while (!signal.aborted) {
    try {
      sink.recordSample(await cgroup.read());
    } catch (error) {
      sink.recordSampleError(error);
    }
    next += intervalMs;
    const now = clock.now();
    if (next < now) next = now + intervalMs - ((now - next) % intervalMs);
    try {
      await clock.sleep(next - now, signal);
    } catch (error) {
      if (signal.aborted) return;
      throw error;
    }
  }
}
