import assert from "node:assert/strict";
import fc from "fast-check";
import { GiB } from "../../api/quantity.ts";
import { FakeClock } from "../../lib/clock.ts";
import { memoryLogger } from "../../lib/log.ts";
import { node, request, testState, vmPod, vmView } from "../core/_fixtures.ts";
import { upsertNode, upsertPod, upsertVm } from "../core/state.ts";
import { encodeAgentRequest } from "../../api/permit.ts";
import { urlPath } from "./server.ts";
import { createMetrics } from "./metrics.ts";
import type { SchedulerKube } from "./kube.ts";
import {
  createPermitHandler,
  MAX_BODY_BYTES,
  readJsonLimited,
  readLimited,
} from "./permit_handler.ts";
import { VmAnnotationWriter } from "./vm_writer.ts";

/** The API calls the permit path never makes. */
const UNUSED_KUBE = {
  getPod: () => Promise.reject(new Error("unused")),
  bindPod: () => Promise.reject(new Error("unused")),
  createMigration: () => Promise.reject(new Error("unused")),
  deleteMigration: () => Promise.reject(new Error("unused")),
} satisfies Partial<SchedulerKube>;

/** The annotation writer over `kube` on a fake clock. */
function writerFor(state: ReturnType<typeof testState>, kube: SchedulerKube): VmAnnotationWriter {
  return new VmAnnotationWriter({
    state,
    kube,
    applyVm: () => {},
    logger: memoryLogger(),
    clock: new FakeClock(),
    retryMs: 1000,
    signal: new AbortController().signal,
  });
}

function handler(metrics?: ReturnType<typeof createMetrics>) {
  const state = testState();
  upsertNode(state, node("n1", 4000, 8 * GiB));
  upsertPod(state, vmPod("vm", { node: "n1", actual: { cpu: 1000, mem: GiB } }));
  upsertVm(state, vmView("vm", { cpu: 1000, mem: GiB }));
  const kube: SchedulerKube = {
    patchVm: () => Promise.resolve({ metadata: { name: "vm", namespace: "default" } }),
    getVm: () => Promise.resolve({ metadata: { name: "vm", namespace: "default" } }),
    ...UNUSED_KUBE,
  };
  const writer = writerFor(state, kube);
  return createPermitHandler({
    state,
    writer,
    logger: memoryLogger(),
    clock: new FakeClock(),
    isLeader: () => true,
    ...(metrics ? { metrics } : {}),
  });
}

Deno.test("readLimited: exactly 1 KiB passes, one byte more does not, chunked or not", async () => {
  const ok = "x".repeat(MAX_BODY_BYTES);
  assert.equal(
    (await readLimited(new Request("http://x/", { method: "POST", body: ok }), MAX_BODY_BYTES))
      ?.byteLength,
    MAX_BODY_BYTES,
  );
  assert.equal(
    await readLimited(new Request("http://x/", { method: "POST", body: ok + "y" }), MAX_BODY_BYTES),
    undefined,
  );
  const stream = (s: string) =>
    new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode(s.slice(0, 600)));
        c.enqueue(new TextEncoder().encode(s.slice(600)));
        c.close();
      },
    });
  const chunked = (s: string) => new Request("http://x/", { method: "POST", body: stream(s) });
  assert.equal((await readLimited(chunked(ok), MAX_BODY_BYTES))?.byteLength, MAX_BODY_BYTES);
  assert.equal(await readLimited(chunked(ok + "y"), MAX_BODY_BYTES), undefined);
});

Deno.test("property: arbitrary bodies never crash the permit handler (no 500)", async () => {
  const h = handler();
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.jsonValue().map((v) => JSON.stringify(v)),
        fc.string(),
        fc.record({
          protoVersion: fc.oneof(fc.integer({ min: -2, max: 9 }), fc.string()),
          pod: fc.record({
            namespace: fc.constantFrom("default", "x"),
            name: fc.constantFrom("vm-pod", "nope"),
          }),
          computeUnit: fc.record({
            vCPUs: fc.oneof(fc.nat(), fc.string()),
            mem: fc.oneof(fc.nat(), fc.string()),
          }),
          resources: fc.record({
            vCPUs: fc.oneof(fc.nat(), fc.string()),
            mem: fc.oneof(fc.nat(), fc.string()),
          }),
          lastPermit: fc.constant(null),
        }).map((v) => JSON.stringify(v)),
      ),
      async (body) => {
        const r = await h(new Request("http://s/", { method: "POST", body }));
        await r.body?.cancel();
        assert.ok([200, 400, 404].includes(r.status), `status ${r.status} for ${body}`);
      },
    ),
    { numRuns: 1000 },
  );
});

function post(body: unknown): Request {
  return new Request("http://s/", { method: "POST", body: JSON.stringify(body) });
}

Deno.test("permit: a pod's requests wait while its increase is recorded; other pods do not", async () => {
  const state = testState();
  upsertNode(state, node("n1", 8000, 16 * GiB));
  for (const vm of ["vm", "vm2"]) {
    upsertPod(state, vmPod(vm, { node: "n1", actual: { cpu: 1000, mem: GiB } }));
    upsertVm(state, vmView(vm, { cpu: 1000, mem: GiB }));
  }
  const gates: (() => void)[] = [];
  const patched: string[] = [];
  const kube: SchedulerKube = {
    patchVm: (_ns, name) =>
      new Promise((resolve) =>
        gates.push(() => {
          patched.push(name);
          resolve({ metadata: { name, namespace: "default" } });
        })
      ),
    getVm: () => Promise.reject(new Error("unused")),
    ...UNUSED_KUBE,
  };
  const writer = writerFor(state, kube);
  const h = createPermitHandler({
    state,
    writer,
    logger: memoryLogger(),
    clock: new FakeClock(),
    isLeader: () => true,
  });
  const one = { cpu: 1000, mem: GiB };
  const done: string[] = [];
  const track = (name: string, p: Promise<Response>) =>
    p.then(async (r) => {
      done.push(name);
      return { status: r.status, body: await r.text() };
    });
  const increase = track(
    "increase",
    h(post(encodeAgentRequest(request("vm", { cpu: 2000, mem: GiB }, one)))),
  );
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(gates.length, 1, "the increase is being recorded");
  const sameAgain = track("same pod", h(post(encodeAgentRequest(request("vm", one, one)))));
  const other = track("other pod", h(post(encodeAgentRequest(request("vm2", one, one)))));
  assert.deepEqual(await other, { status: 200, body: `{"permit":{"vCPUs":1,"mem":"1Gi"}}` });
  await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual(done, ["other pod"], "the same pod's request waits for the increase");
  gates.shift()!();
  assert.deepEqual(await increase, { status: 200, body: `{"permit":{"vCPUs":2,"mem":"1Gi"}}` });
  const again = await sameAgain;
  assert.equal(again.status, 200);
  assert.deepEqual(done, ["other pod", "increase", "same pod"]);
  assert.deepEqual(patched, ["vm"]);
});

Deno.test("permit: answers differ per permit (the cached answer text is keyed correctly)", async () => {
  const h = handler();
  const ask = async (want: { cpu: number; mem: number }) => {
    const r = await h(post(encodeAgentRequest(request("vm", want, { cpu: 1000, mem: GiB }))));
    return `${r.status} ${await r.text()}`;
  };
  assert.equal(await ask({ cpu: 1000, mem: GiB }), `200 {"permit":{"vCPUs":1,"mem":"1Gi"}}`);
  assert.equal(await ask({ cpu: 750, mem: GiB }), `200 {"permit":{"vCPUs":"750m","mem":"1Gi"}}`);
  assert.equal(await ask({ cpu: 1000, mem: GiB }), `200 {"permit":{"vCPUs":1,"mem":"1Gi"}}`);
  assert.equal(
    await ask({ cpu: 500, mem: 512 * 1024 * 1024 }),
    `200 {"permit":{"vCPUs":"500m","mem":"512Mi"}}`,
  );
});

Deno.test("urlPath: the path of absolute URLs, without query or fragment", () => {
  const cases: [string, string][] = [
    ["http://127.0.0.1:10299/", "/"],
    ["http://127.0.0.1:10299", "/"],
    ["http://h/scheduler/filter?x=1", "/scheduler/filter"],
    ["http://h/scheduler#f", "/scheduler"],
    ["https://[::1]:8080/a/b/c?q=/x", "/a/b/c"],
  ];
  for (const [url, path] of cases) assert.equal(urlPath(url), path, url);
  fc.assert(
    fc.property(fc.webUrl({ withQueryParameters: true, withFragments: true }), (u) => {
      // `Request.url` is always a serialised URL, so that is what urlPath gets.
      const href = new URL(u).href;
      assert.equal(urlPath(href), new URL(href).pathname);
    }),
  );
});

/** A JSON body padded with spaces to exactly `bytes` bytes. */
function padded(value: unknown, bytes: number): string {
  const text = JSON.stringify(value);
  return text + " ".repeat(bytes - new TextEncoder().encode(text).byteLength);
}

Deno.test("readJsonLimited: declared length, chunked, too large and bad JSON", async () => {
  const v = { a: [1, "x"] };
  const withLength = (body: string, length = new TextEncoder().encode(body).byteLength) =>
    new Request("http://x/", {
      method: "POST",
      body,
      headers: { "content-length": String(length) },
    });
  assert.deepEqual(await readJsonLimited(withLength(padded(v, 1024)), 1024), {
    ok: true,
    value: v,
  });
  assert.deepEqual(await readJsonLimited(withLength(padded(v, 1025)), 1024), {
    ok: false,
    reason: "too large",
  });
  assert.deepEqual(await readJsonLimited(withLength("{nope"), 1024), {
    ok: false,
    reason: "bad JSON",
  });
  assert.deepEqual(await readJsonLimited(withLength(""), 1024), { ok: false, reason: "bad JSON" });
  // No declared length: read through the limited reader.
  const plain = (body: string) => new Request("http://x/", { method: "POST", body });
  assert.deepEqual(await readJsonLimited(plain(padded(v, 1024)), 1024), { ok: true, value: v });
  assert.deepEqual(await readJsonLimited(plain(padded(v, 1025)), 1024), {
    ok: false,
    reason: "too large",
  });
  assert.deepEqual(await readJsonLimited(plain("[1,"), 1024), { ok: false, reason: "bad JSON" });
});

Deno.test("permit over real HTTP: 1 KiB bodies pass, longer ones and chunked ones too are checked", async () => {
  const h = handler();
  await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, h);
  const url = `http://127.0.0.1:${server.addr.port}/`;
  const req = encodeAgentRequest(request("vm", { cpu: 1000, mem: GiB }, { cpu: 1000, mem: GiB }));
  const ask = async (body: BodyInit, method = "POST") => {
    const r = await fetch(url, { method, body });
    return `${r.status} ${(await r.text()).trim()}`;
  };
  const ok = `200 {"permit":{"vCPUs":1,"mem":"1Gi"}}`;
  assert.equal(await ask(padded(req, MAX_BODY_BYTES)), ok);
  assert.equal(await ask(padded(req, MAX_BODY_BYTES + 1)), "400 bad JSON");
  assert.equal(await ask("{"), "400 bad JSON");
  assert.equal(
    await ask(JSON.stringify({ ...req, protoVersion: 6 })),
    "400 protocol version mismatch: need v5.0 but got v4.0",
  );
  assert.equal(
    await ask(JSON.stringify({ ...req, pod: { namespace: "default", name: "x" } })),
    "404 pod not found",
  );
  const stream = (s: string) =>
    new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode(s.slice(0, 100)));
        c.enqueue(new TextEncoder().encode(s.slice(100)));
        c.close();
      },
    });
  assert.equal(await ask(stream(padded(req, MAX_BODY_BYTES))), ok);
  assert.equal(await ask(stream(padded(req, MAX_BODY_BYTES + 1))), "400 bad JSON");
  assert.equal(await ask(undefined as unknown as BodyInit, "GET"), "400 must be POST");
  // A byte-order mark is not JSON (Go's decoder rejects it too), declared length or chunked.
  const bom = new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode(JSON.stringify(req))]);
  assert.equal(await ask(bom), "400 bad JSON");
  assert.equal(
    await ask(
      new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(bom);
          c.close();
        },
      }),
    ),
    "400 bad JSON",
  );
});

Deno.test("permit metrics: answers counted by code and node, across scrapes", async () => {
  const metrics = createMetrics(testState(), {});
  const h = handler(metrics);
  const one = { cpu: 1000, mem: GiB };
  const send = async (body: unknown) => await (await h(post(body))).body?.cancel();
  await send(encodeAgentRequest(request("vm", one, one)));
  await send(encodeAgentRequest(request("vm", one, one)));
  await send(encodeAgentRequest(request("nope", one, one)));
  await send({ protoVersion: 7 });
  const line = (text: string, series: string) =>
    text.split("\n").find((l) => l.startsWith(series + " "))?.split(" ")[1];
  let text = await metrics.registry.metrics();
  assert.equal(line(text, `autoscaling_plugin_resource_requests_total{code="200"}`), "2");
  assert.equal(line(text, `autoscaling_plugin_resource_requests_total{code="404"}`), "1");
  assert.equal(line(text, `autoscaling_plugin_resource_requests_total{code="400"}`), "1");
  assert.equal(
    line(text, `autoscaling_plugin_resource_requests_results_total{code="200",node="n1"}`),
    "2",
  );
  await send(encodeAgentRequest(request("vm", one, one)));
  text = await metrics.registry.metrics();
  assert.equal(line(text, `autoscaling_plugin_resource_requests_total{code="200"}`), "3");
  assert.equal(
    line(text, `autoscaling_plugin_resource_requests_results_total{code="200",node="n1"}`),
    "3",
  );
  assert.equal(line(text, `autoscaling_plugin_resource_requests_total{code="404"}`), "1");
  assert.equal(
    line(text, `autoscaling_plugin_permit_latency_seconds_count{kind="memory"}`),
    "3",
  );
});
