/**
 * Tests for the cgroup watcher loop on a FakeClock: a sample every 100 ms, read failures reported
 * without stopping the loop, and a clean stop on abort.
 * @module
 */
import assert from "node:assert/strict";
import { FakeClock } from "../../lib/clock.ts";
import type { CgroupReading, WorkloadCgroup } from "./cgroup.ts";
import { watchCgroup } from "./watcher.ts";

Deno.test("watcher samples every 100 ms, survives read errors, stops on abort", async () => {
  const clock = new FakeClock(0);
  let reads = 0;
  const cgroup: WorkloadCgroup = {
    path: "/fake",
    read: () => {
      reads++;
      return reads === 3
        ? Promise.reject(new Error("EIO"))
        : Promise.resolve({ nonReclaimableBytes: reads, currentBytes: reads });
    },
    setLimits: () => Promise.resolve(),
  };
  const samples: [number, CgroupReading][] = [];
  const errors: unknown[] = [];
  const ac = new AbortController();
  const done = watchCgroup(
    cgroup,
    {
      recordSample: (r) => samples.push([clock.now(), r]),
      recordSampleError: (e) => errors.push(e),
    },
    clock,
    ac.signal,
  );
  for (let i = 0; i < 5; i++) {
    // Let the read resolve, then move to the next tick.
    for (let j = 0; j < 5; j++) await Promise.resolve();
    await clock.advance(100);
  }
  for (let j = 0; j < 5; j++) await Promise.resolve();
  ac.abort();
  await done;
  assert.deepEqual(samples.map(([t]) => t), [0, 100, 300, 400, 500]);
  assert.equal(errors.length, 1);
  assert.equal(reads, 6);
});
