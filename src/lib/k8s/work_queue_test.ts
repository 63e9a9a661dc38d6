import assert from "node:assert/strict";
import { FakeClock } from "../clock.ts";
import { memoryLogger } from "../log.ts";
import { WorkQueue } from "./work_queue.ts";

async function settle() {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

Deno.test("work queue: one run per key at a time; adds during a run rerun once", async () => {
  const clock = new FakeClock(0);
  const log: string[] = [];
  const gates = new Map<string, () => void>();
  const q = new WorkQueue({
    clock,
    logger: memoryLogger(),
    concurrency: 4,
    handler: (key) => {
      log.push(`start:${key}`);
      return new Promise((resolve) =>
        gates.set(key, () => {
          log.push(`end:${key}`);
          resolve();
        })
      );
    },
  });
  const ac = new AbortController();
  const run = q.run(ac.signal);
  q.add("a");
  q.add("a");
  q.add("b");
  await settle();
  assert.deepEqual(log, ["start:a", "start:b"]);
  q.add("a");
  q.add("a");
  await settle();
  gates.get("a")!();
  await settle();
  assert.deepEqual(log, ["start:a", "start:b", "end:a", "start:a"]);
  gates.get("a")!();
  gates.get("b")!();
  await settle();
  assert.deepEqual(log.length, 6);
  ac.abort();
  await run;
});

Deno.test("work queue: requeueAfter on the fake clock, backoff doubles on failure", async () => {
  const clock = new FakeClock(0);
  const runs: number[] = [];
  let fail = true;
  const q = new WorkQueue({
    clock,
    logger: memoryLogger(),
    baseBackoffMs: 100,
    handler: () => {
      runs.push(clock.now());
      if (fail) return Promise.reject(new Error("x"));
      return Promise.resolve({ requeueAfterMs: 15_000 });
    },
  });
  const ac = new AbortController();
  const run = q.run(ac.signal);
  q.add("k");
  await settle();
  await clock.advance(100);
  await settle();
  await clock.advance(200);
  await settle();
  assert.deepEqual(runs, [0, 100, 300]);
  assert.equal(q.failing().get("k"), 3);
  fail = false;
  await clock.advance(400);
  await settle();
  assert.equal(q.failing().size, 0);
  await clock.advance(15_000);
  await settle();
  assert.deepEqual(runs, [0, 100, 300, 700, 15_700]);
  // An earlier add wins over a later scheduled requeue.
  q.add("k");
  await settle();
  assert.equal(runs.length, 6);
  ac.abort();
  await run;
});
