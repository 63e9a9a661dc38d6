import assert from "node:assert/strict";
import { FakeClock } from "../clock.ts";
import { memoryLogger } from "../log.ts";
import { FakeApiServer } from "./_fake_apiserver.ts";
import { KubeClient } from "./client.ts";
import { LeaseSchema } from "./core_types.ts";
import { formatMicroTime, LeadershipLostError, runLeaderElection } from "./leader_election.ts";
import { LEASES } from "./meta.ts";

/** Lets in-process requests complete (zero-delay yields, no real waiting). */
async function settle() {
  for (let i = 0; i < 30; i++) await new Promise((r) => setTimeout(r, 0));
}

const LEASE = "/apis/coordination.k8s.io/v1/leases";

Deno.test("leader election: one leader; the other takes over after the lease expires", async () => {
  await using srv = new FakeApiServer();
  using client = new KubeClient({ server: "http://x", fetch: (r) => srv.handle(r) });
  const leases = client.resource(LEASES, LeaseSchema);
  const clock = new FakeClock(1_000_000);
  const common = { leases, namespace: "kube-system", name: "lock", clock, logger: memoryLogger() };
  const leading: string[] = [];
  const acA = new AbortController();
  const a = runLeaderElection({ ...common, identity: "A" }, acA.signal, async (s) => {
    leading.push("A");
    await new Promise((r) => s.addEventListener("abort", r, { once: true }));
  });
  await settle();
  assert.deepEqual(leading, ["A"]);
  const acB = new AbortController();
  const b = runLeaderElection({ ...common, identity: "B" }, acB.signal, async (s) => {
    leading.push("B");
    await new Promise((r) => s.addEventListener("abort", r, { once: true }));
  });
  for (let i = 0; i < 10; i++) {
    await clock.advance(2_000);
    await settle();
  }
  assert.deepEqual(leading, ["A"], "B must not lead while A renews");
  const lease = srv.object(LEASE, "kube-system", "lock")!;
  assert.equal((lease.spec as Record<string, unknown>).holderIdentity, "A");
  assert.equal((lease.spec as Record<string, unknown>).renewTime, formatMicroTime(clock.now()));

  // A shuts down and releases; B acquires on its next attempt.
  acA.abort();
  await a;
  await clock.advance(2_000);
  await settle();
  assert.deepEqual(leading, ["A", "B"]);
  const after = srv.object(LEASE, "kube-system", "lock")!.spec as Record<string, unknown>;
  assert.equal(after.holderIdentity, "B");
  assert.equal(after.leaseTransitions, 1);
  acB.abort();
  await b;
});

Deno.test("leader election: a leader that cannot renew loses leadership", async () => {
  await using srv = new FakeApiServer();
  using client = new KubeClient({ server: "http://x", fetch: (r) => srv.handle(r) });
  const leases = client.resource(LEASES, LeaseSchema);
  const clock = new FakeClock(0);
  let leadingSignal: AbortSignal | undefined;
  const p = runLeaderElection(
    {
      leases,
      namespace: "ns",
      name: "lock",
      identity: "A",
      clock,
      logger: memoryLogger(),
    },
    new AbortController().signal,
    async (s) => {
      leadingSignal = s;
      await new Promise((r) => s.addEventListener("abort", r, { once: true }));
    },
  );
  const outcome = p.then(() => undefined, (e: unknown) => e);
  await settle();
  assert.ok(leadingSignal && !leadingSignal.aborted);
  srv.intercept = () => Response.json({ code: 500, message: "down" }, { status: 500 });
  for (let i = 0; i < 5; i++) {
    await clock.advance(2_000);
    await settle();
  }
  assert.ok(leadingSignal.aborted);
  assert.ok(await outcome instanceof LeadershipLostError);
});

Deno.test("leader election: an expired lease held by another is taken over", async () => {
  await using srv = new FakeApiServer();
  using client = new KubeClient({ server: "http://x", fetch: (r) => srv.handle(r) });
  const leases = client.resource(LEASES, LeaseSchema);
  const clock = new FakeClock(0);
  srv.seed(LEASE, {
    metadata: { name: "lock", namespace: "ns" },
    spec: { holderIdentity: "dead", leaseDurationSeconds: 15, renewTime: formatMicroTime(0) },
  });
  let led = false;
  const ac = new AbortController();
  const p = runLeaderElection(
    {
      leases,
      namespace: "ns",
      name: "lock",
      identity: "A",
      clock,
      logger: memoryLogger(),
    },
    ac.signal,
    async (s) => {
      led = true;
      await new Promise((r) => s.addEventListener("abort", r, { once: true }));
    },
  );
  await settle();
  for (let t = 2_000; t <= 14_000; t += 2_000) {
    await clock.advance(2_000);
    await settle();
    assert.equal(led, false, `not before expiry (t=${t})`);
  }
  await clock.advance(2_000);
  await settle();
  assert.equal(led, true);
  ac.abort();
  await p;
});
