import assert from "node:assert/strict";
import { FakeClock } from "../clock.ts";
import { memoryLogger } from "../log.ts";
import { KubeApiError, type ListResult, type WatchEvent } from "./client.ts";
import { Informer, type InformerEvent } from "./informer.ts";
import { ParseError } from "../errors.ts";

interface Obj {
  metadata: { name: string; namespace: string; resourceVersion: string };
  v: number;
}
const obj = (name: string, rv: number, v = 0): Obj => ({
  metadata: { name, namespace: "ns", resourceVersion: String(rv) },
  v,
});

/** A scripted watch: a queue of events the test pushes, ended or failed by the test. */
class ScriptedWatch {
  #queue: (WatchEvent<Obj> | Error | "end")[] = [];
  #wake: (() => void) | undefined;
  readonly calls: string[] = [];
  push(x: WatchEvent<Obj> | Error | "end") {
    this.#queue.push(x);
    this.#wake?.();
  }
  fn = (rv: string, signal: AbortSignal): AsyncIterable<WatchEvent<Obj>> => {
    this.calls.push(rv);
    return this.#events(signal);
  };
  async *#events(signal: AbortSignal): AsyncGenerator<WatchEvent<Obj>> {
    while (!signal.aborted) {
      const next = this.#queue.shift();
      if (next === undefined) {
        await new Promise<void>((r) => {
          this.#wake = r;
          signal.addEventListener("abort", () => r(), { once: true });
        });
        continue;
      }
      if (next === "end") return;
      if (next instanceof Error) throw next;
      yield next;
    }
  }
}

async function settle() {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

function setup(lists: ListResult<Obj>[]) {
  const clock = new FakeClock(0);
  const watch = new ScriptedWatch();
  let listCalls = 0;
  const events: string[] = [];
  const inf = new Informer<Obj>({
    list: () => {
      const r = lists[Math.min(listCalls, lists.length - 1)]!;
      listCalls++;
      return Promise.resolve(r);
    },
    watch: watch.fn,
    clock,
    logger: memoryLogger(),
    retryMs: 1000,
    resyncMs: 30_000,
  });
  inf.subscribe((ev: InformerEvent<Obj>) =>
    events.push(`${ev.type}:${ev.key}${ev.type === "update" ? `@${ev.object.v}` : ""}`)
  );
  return { clock, watch, inf, events, listCalls: () => listCalls };
}

Deno.test("informer: list then watch, store by namespace/name, synced", async () => {
  const { watch, inf, events } = setup([
    { items: [obj("a", 1), obj("b", 2)], resourceVersion: "10", invalid: [] },
  ]);
  const ac = new AbortController();
  assert.equal(inf.synced, false);
  const run = inf.run(ac.signal);
  await inf.waitForSync();
  assert.equal(inf.synced, true);
  assert.deepEqual(watch.calls, ["10"]);
  watch.push({ type: "MODIFIED", object: obj("a", 11, 5) });
  watch.push({ type: "ADDED", object: obj("c", 12) });
  watch.push({ type: "DELETED", object: obj("b", 13) });
  watch.push({ type: "BOOKMARK", resourceVersion: "20" });
  await settle();
  assert.deepEqual(events, ["add:ns/a", "add:ns/b", "update:ns/a@5", "add:ns/c", "delete:ns/b"]);
  assert.equal(inf.get("ns/a")?.v, 5);
  assert.equal(inf.get("ns/b"), undefined);
  assert.equal(inf.resourceVersion, "20");
  // A server-side timeout ends the stream: watch again from the bookmark, no relist.
  watch.push("end");
  await settle();
  assert.deepEqual(watch.calls, ["10", "20"]);
  ac.abort();
  await run;
});

Deno.test("informer: 410 Gone relists at once and delivers the difference", async () => {
  const { watch, inf, events, listCalls } = setup([
    { items: [obj("a", 1), obj("b", 2)], resourceVersion: "10", invalid: [] },
    { items: [obj("a", 15, 7), obj("c", 16)], resourceVersion: "30", invalid: [] },
  ]);
  const ac = new AbortController();
  const run = inf.run(ac.signal);
  await inf.waitForSync();
  watch.push(new KubeApiError("gone", { status: 410 }));
  await settle();
  assert.equal(listCalls(), 2);
  assert.deepEqual(events, ["add:ns/a", "add:ns/b", "update:ns/a@7", "add:ns/c", "delete:ns/b"]);
  assert.deepEqual(watch.calls, ["10", "30"]);
  ac.abort();
  await run;
});

Deno.test("informer: other errors wait retryMs before relisting; resync re-delivers", async () => {
  const { clock, watch, inf, events, listCalls } = setup([
    { items: [obj("a", 1)], resourceVersion: "10", invalid: [] },
  ]);
  const ac = new AbortController();
  const run = inf.run(ac.signal);
  await inf.waitForSync();
  watch.push(new KubeApiError("boom", { status: 500 }));
  await settle();
  assert.equal(listCalls(), 1);
  await clock.advance(999);
  await settle();
  assert.equal(listCalls(), 1);
  await clock.advance(1);
  await settle();
  assert.equal(listCalls(), 2);
  events.length = 0;
  await clock.advance(30_000);
  await settle();
  assert.deepEqual(events, ["resync:ns/a"]);
  ac.abort();
  await run;
});

Deno.test("informer: an unparseable object changes nothing; its DELETED still deletes", async () => {
  const { watch, inf, events } = setup([
    { items: [obj("a", 1, 1)], resourceVersion: "10", invalid: [] },
  ]);
  const ac = new AbortController();
  const run = inf.run(ac.signal);
  await inf.waitForSync();
  const bad = { name: "a", namespace: "ns", resourceVersion: "11", error: new ParseError("bad") };
  watch.push({ type: "INVALID", eventType: "MODIFIED", object: bad });
  await settle();
  assert.equal(inf.get("ns/a")?.v, 1);
  watch.push({ type: "INVALID", eventType: "DELETED", object: { ...bad, resourceVersion: "12" } });
  await settle();
  assert.equal(inf.get("ns/a"), undefined);
  assert.deepEqual(events, ["add:ns/a", "delete:ns/a"]);
  assert.equal(inf.resourceVersion, "12");
  ac.abort();
  await run;
});
