/** Tests of scheduler discovery and the permit request, with hand-written fakes in-process. */
import assert from "node:assert/strict";
import { GiB } from "../../api/quantity.ts";
import { RemoteError, TimeoutError } from "../../lib/errors.ts";
import type { Pod } from "../../lib/k8s/core_types.ts";
import { pickScheduler, requestPermit, SchedulerTracker } from "./scheduler.ts";

const pod = (name: string, created: string, ip: string | undefined, ready: boolean): Pod => ({
  metadata: { name, uid: `uid-${name}`, namespace: "kube-system", creationTimestamp: created },
  spec: { containers: [{ name: "s" }] },
  status: {
    ...(ip ? { podIP: ip } : {}),
    conditions: [{ type: "Ready", status: ready ? "True" : "False" }],
  },
});

Deno.test("the newest ready scheduler pod with an IP wins", () => {
  const pods = [
    pod("old", "2026-01-01T00:00:00Z", "10.0.0.1", true),
    pod("new-not-ready", "2026-01-03T00:00:00Z", "10.0.0.3", false),
    pod("new-no-ip", "2026-01-03T00:00:00Z", undefined, true),
    pod("newer", "2026-01-02T00:00:00Z", "10.0.0.2", true),
  ];
  assert.deepEqual(pickScheduler(pods), { name: "newer", uid: "uid-newer", ip: "10.0.0.2" });
  assert.equal(pickScheduler([pods[1]!, pods[2]!]), undefined);
});

Deno.test("the tracker notifies only on a real change (restart = new uid)", () => {
  const t = new SchedulerTracker();
  const seen: (string | undefined)[] = [];
  t.subscribe((p) => seen.push(p?.uid));
  const a = pod("a", "2026-01-01T00:00:00Z", "10.0.0.1", true);
  t.update([a]);
  t.update([a]);
  t.update([{ ...a, metadata: { ...a.metadata, uid: "uid-a2" } }]);
  t.update([]);
  assert.deepEqual(seen, ["uid-a", "uid-a2", undefined]);
});

Deno.test("permit request: exact wire body, parsed answer, non-200 and bad bodies are errors", async () => {
  let body: unknown;
  let answer = () => Response.json({ permit: { vCPUs: 1, mem: "4Gi" } });
  const fetchFn = async (req: Request) => {
    assert.equal(req.method, "POST");
    assert.equal(req.headers.get("content-type"), "application/json");
    body = await req.json();
    return answer();
  };
  const req = {
    pod: { namespace: "ns", name: "vm-pod" },
    computeUnit: { vCPUs: 250, mem: GiB },
    resources: { vCPUs: 1000, mem: 4 * GiB },
    lastPermit: { vCPUs: 500, mem: 2 * GiB },
    metrics: { loadAvg1M: 0.42 },
  };
  const r = await requestPermit(fetchFn, "http://s:10299/", req, 1000);
  assert.deepEqual(body, {
    protoVersion: 7,
    pod: { namespace: "ns", name: "vm-pod" },
    computeUnit: { vCPUs: "250m", mem: "1Gi" },
    resources: { vCPUs: 1, mem: "4Gi" },
    lastPermit: { vCPUs: "500m", mem: "2Gi" },
    metrics: { loadAvg1M: 0.42 },
  });
  assert.deepEqual(r, { permit: { vCPUs: 1000, mem: 4 * GiB } });
  answer = () => Response.json({ permit: { vCPUs: 1, mem: "4Gi" }, migrate: {} });
  assert.deepEqual(await requestPermit(fetchFn, "http://s/", req, 1000), {
    permit: { vCPUs: 1000, mem: 4 * GiB },
    migrate: {},
  });
  answer = () => new Response("pod not found", { status: 404 });
  await assert.rejects(
    requestPermit(fetchFn, "http://s/", req, 1000),
    (e: unknown) => e instanceof RemoteError && e.status === 404,
  );
  answer = () => new Response("{nope");
  await assert.rejects(requestPermit(fetchFn, "http://s/", req, 1000), RemoteError);
  answer = () => Response.json({ permit: { vCPUs: "x" } });
  await assert.rejects(requestPermit(fetchFn, "http://s/", req, 1000), RemoteError);
  const hang = (r: Request) =>
    new Promise<Response>((_, reject) =>
      r.signal.addEventListener("abort", () => reject(r.signal.reason))
    );
  await assert.rejects(requestPermit(hang, "http://s/", req, 10), TimeoutError);
});
