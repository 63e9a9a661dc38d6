import assert from "node:assert/strict";
import { z } from "zod";
import { FakeApiServer } from "./_fake_apiserver.ts";
import { isConflict, isGone, isInvalid, isNotFound, KubeApiError, KubeClient } from "./client.ts";
import { PodSchema } from "./core_types.ts";
import { ObjectMetaSchema, PODS, VIRTUAL_MACHINES } from "./meta.ts";
import { ParseError } from "../errors.ts";

const VmSchema = z.looseObject({
  metadata: ObjectMetaSchema,
  spec: z.object({ cpus: z.union([z.string(), z.number()]).transform((v) => String(v)) }),
  status: z.looseObject({ phase: z.string().optional() }).optional(),
});

function pod(name: string, labels: Record<string, string> = {}) {
  return {
    metadata: { name, namespace: "ns", labels },
    spec: { containers: [{ name: "c", image: "x" }] },
  };
}

Deno.test("client: create, get, list with selectors, replace conflict, delete", async () => {
  await using srv = new FakeApiServer();
  using client = new KubeClient({ server: srv.url });
  const pods = client.resource(PODS, PodSchema);
  const created = await pods.create(pod("a", { app: "x" }));
  assert.equal(created.metadata.name, "a");
  assert.ok(created.metadata.resourceVersion);
  await pods.create(pod("b", { app: "y" }));
  await assert.rejects(pods.create(pod("a")), (e) => isConflict(e));

  const got = await pods.get("a", { namespace: "ns" });
  assert.equal(got.spec.containers[0]?.name, "c");
  const listed = await pods.list({ namespace: "ns", labelSelector: "app=y" });
  assert.deepEqual(listed.items.map((p) => p.metadata.name), ["b"]);
  assert.equal(listed.resourceVersion, srv.resourceVersion);
  assert.ok(srv.requests.some((r) => r.includes("labelSelector=app%3Dy")));

  // Optimistic concurrency: replacing with a stale resourceVersion is a 409.
  const fresh = await pods.replace({ ...got, metadata: { ...got.metadata, labels: { v: "1" } } });
  assert.equal(fresh.metadata.labels?.v, "1");
  const err = await pods.replace(got).catch((e) => e);
  assert.ok(err instanceof KubeApiError);
  assert.equal(err.status, 409);
  assert.equal(err.reason, "Conflict");
  assert.match(err.message, /Cannot replace Pod "ns\/a": 409 the object has been modified/);

  await pods.delete("a", { namespace: "ns" });
  await assert.rejects(pods.get("a", { namespace: "ns" }), (e) => isNotFound(e));
  await assert.rejects(pods.delete("a", { namespace: "ns" }), (e) => isNotFound(e));
});

Deno.test("client: JSON patch test op failing is 422; merge patch; status subresource", async () => {
  await using srv = new FakeApiServer();
  using client = new KubeClient({ server: srv.url });
  const vms = client.resource(VIRTUAL_MACHINES, VmSchema);
  srv.seed("/apis/vm.neon.tech/v1/virtualmachines", {
    metadata: { name: "vm", namespace: "ns", annotations: { a: "1" } },
    spec: { cpus: 1 },
  });
  const ok = await vms.patch("vm", {
    type: "json",
    ops: [
      { op: "test", path: "/metadata/annotations/a", value: "1" },
      { op: "replace", path: "/metadata/annotations/a", value: "2" },
    ],
  }, { namespace: "ns" });
  assert.equal(ok.metadata.annotations?.a, "2");
  assert.equal(ok.spec.cpus, "1"); // parsed through the caller's schema (number -> string)
  const failed = await vms.patch("vm", {
    type: "json",
    ops: [{ op: "test", path: "/metadata/annotations/a", value: "1" }],
  }, { namespace: "ns" }).catch((e) => e);
  assert.ok(isInvalid(failed));
  const merged = await vms.patch("vm", { type: "merge", body: { spec: { cpus: "250m" } } }, {
    namespace: "ns",
  });
  assert.equal(merged.spec.cpus, "250m");
  assert.equal(merged.metadata.generation, 2);
  const st = await vms.patch("vm", { type: "merge", body: { status: { phase: "Running" } } }, {
    namespace: "ns",
    subresource: "status",
  });
  assert.equal(st.status?.phase, "Running");
  assert.ok(srv.requests.includes(
    "PATCH /apis/vm.neon.tech/v1/namespaces/ns/virtualmachines/vm/status?fieldManager=neonvm-ts",
  ));
});

Deno.test("client: delete preconditions and a schema mismatch is a ParseError", async () => {
  await using srv = new FakeApiServer();
  using client = new KubeClient({ server: srv.url });
  const pods = client.resource(PODS, PodSchema);
  const p = await pods.create(pod("a"));
  await assert.rejects(
    pods.delete("a", { namespace: "ns", preconditions: { uid: "other" } }),
    (e) => isConflict(e),
  );
  await pods.delete("a", { namespace: "ns", preconditions: { uid: p.metadata.uid! } });

  srv.seed("/api/v1/pods", { metadata: { name: "bad", namespace: "ns" }, spec: { containers: 3 } });
  const err = await pods.get("bad", { namespace: "ns" }).catch((e) => e);
  assert.ok(err instanceof ParseError);
  assert.deepEqual(err.paths, ["spec.containers"]);
  const listed = await pods.list({ namespace: "ns" });
  assert.equal(listed.items.length, 0);
  assert.deepEqual(listed.invalid.map((i) => i.name), ["bad"]);
});

Deno.test("client: watch yields typed events and bookmarks; 410 throws Gone", async () => {
  await using srv = new FakeApiServer();
  using client = new KubeClient({ server: srv.url });
  const pods = client.resource(PODS, PodSchema);
  const ac = new AbortController();
  const seen: string[] = [];
  const it = pods.watch({
    namespace: "ns",
    resourceVersion: srv.resourceVersion,
    signal: ac.signal,
  });
  const done = (async () => {
    for await (const ev of it) {
      seen.push(
        ev.type === "BOOKMARK" || ev.type === "INVALID"
          ? ev.type
          : `${ev.type}:${ev.object.metadata.name}`,
      );
      if (seen.length === 4) ac.abort();
    }
  })();
  // Wait until the watch is registered (the bookmark arrives first).
  while (seen.length === 0) await new Promise((r) => setTimeout(r, 1));
  await pods.create(pod("a"));
  await pods.patch("a", { type: "merge", body: { metadata: { labels: { x: "1" } } } }, {
    namespace: "ns",
  });
  await pods.delete("a", { namespace: "ns" });
  await done;
  assert.deepEqual(seen, ["BOOKMARK", "ADDED:a", "MODIFIED:a", "DELETED:a"]);

  srv.goneOnNextWatch = true;
  const gone = await (async () => {
    for await (const _ of pods.watch({ namespace: "ns", resourceVersion: "1" })) {
      // No events expected before the error.
    }
  })().catch((e) => e);
  assert.ok(isGone(gone));
});

Deno.test("client: bearer token is sent and transport failures are status 0", async () => {
  const seen: (string | null)[] = [];
  using client = new KubeClient({
    server: "http://fake",
    token: () => Promise.resolve("tok"),
    fetch: (req) => {
      seen.push(req.headers.get("authorization"));
      return Promise.reject(new TypeError("connection refused"));
    },
  });
  const pods = client.resource(PODS, PodSchema);
  const err = await pods.get("a", { namespace: "ns" }).catch((e) => e);
  assert.ok(err instanceof KubeApiError);
  assert.equal(err.status, 0);
  assert.deepEqual(seen, ["Bearer tok"]);
});
