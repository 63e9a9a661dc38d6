/**
 * Tests of the runner HTTP API handler with a fake daemon and cgroup.
 * @module
 */
import assert from "node:assert/strict";
import { memoryLogger } from "../../lib/log.ts";
import { RemoteError, TimeoutError } from "../../lib/errors.ts";
import { createRunnerApi, type RunnerApiDeps } from "./http_api.ts";
import type { DaemonCpuClient } from "./daemon_client.ts";

function fakeDaemon(start: number): DaemonCpuClient & { milli: number; fail?: Error } {
  const d: DaemonCpuClient & { milli: number; fail?: Error } = {
    milli: start,
    getCpu: () => (d.fail ? Promise.reject(d.fail) : Promise.resolve(d.milli)),
    setCpu: (m: number) => {
      if (d.fail) return Promise.reject(d.fail);
      d.milli = Math.ceil(m / 1000) * 1000;
      return Promise.resolve();
    },
  };
  return d;
}

const post = (body: string, method = "POST") =>
  new Request("http://runner/cpu_change", { method, body });
const get = (path: string) => new Request(`http://runner${path}`);

function api(over: Partial<RunnerApiDeps> = {}) {
  const daemon = fakeDaemon(1000);
  const cg: number[] = [];
  const a = createRunnerApi({
    mode: "QmpScaling",
    initialMilliCpu: 1000,
    maxMilliCpu: 4000,
    daemon,
    cgroup: { setCpu: (m) => Promise.resolve(void cg.push(m)) },
    logger: memoryLogger(),
    ...over,
  });
  return { a, daemon, cg };
}

Deno.test("QmpScaling: /cpu_change stores (and sets the cgroup); /cpu_current echoes, wire encoded", async () => {
  const { a, cg } = api();
  assert.deepEqual(await (await a.handle(get("/cpu_current"))).json(), { VCPUs: 1 });
  assert.equal((await a.handle(post('{"VCPUs":"1500m"}'))).status, 200);
  assert.deepEqual(await (await a.handle(get("/cpu_current"))).json(), { VCPUs: "1500m" });
  assert.equal((await a.handle(post('{"VCPUs":2}'))).status, 200);
  assert.deepEqual(await (await a.handle(get("/cpu_current"))).json(), { VCPUs: 2 });
  assert.deepEqual(cg, [1500, 2000]);
  assert.equal((await a.handle(get("/ready"))).status, 200);
});

Deno.test("bad bodies are 400 and change nothing", async () => {
  const { a, cg } = api();
  for (
    const body of [
      "",
      "nope",
      "{}",
      '{"vcpus":2}',
      '{"VCPUs":"two"}',
      '{"VCPUs":-1}',
      '{"VCPUs":0}',
      '{"VCPUs":5}',
      "[1]",
    ]
  ) {
    assert.equal((await a.handle(post(body))).status, 400, body);
  }
  assert.equal((await a.handle(post('{"VCPUs":2}', "PUT"))).status, 400);
  assert.equal(a.storedMilliCpu(), 1000);
  assert.deepEqual(cg, []);
  assert.equal((await a.handle(get("/nope"))).status, 404);
});

Deno.test("SysfsScaling: changes go through the daemon; current prefers the guest when they differ", async () => {
  const { a, daemon } = api({ mode: "SysfsScaling", cgroup: undefined });
  assert.equal((await a.handle(post('{"VCPUs":"2500m"}'))).status, 200);
  assert.equal(daemon.milli, 3000);
  assert.deepEqual(await (await a.handle(get("/cpu_current"))).json(), { VCPUs: "2500m" });
  daemon.milli = 1000; // the guest lost CPUs behind our back
  assert.deepEqual(await (await a.handle(get("/cpu_current"))).json(), { VCPUs: 1 });
  assert.equal((await a.handle(get("/ready"))).status, 200);
});

Deno.test("SysfsScaling: daemon failures map to 502/504/503 and keep the stored value", async () => {
  const { a, daemon } = api({ mode: "SysfsScaling", cgroup: undefined });
  daemon.fail = new RemoteError("unreachable");
  assert.equal((await a.handle(post('{"VCPUs":3}'))).status, 502);
  assert.equal((await a.handle(get("/cpu_current"))).status, 502);
  assert.equal((await a.handle(get("/ready"))).status, 503);
  daemon.fail = new TimeoutError("slow");
  assert.equal((await a.handle(post('{"VCPUs":3}'))).status, 504);
  daemon.fail = new RemoteError("500 from daemon", { status: 500 });
  assert.equal((await a.handle(post('{"VCPUs":3}'))).status, 500);
  assert.equal(a.storedMilliCpu(), 1000);
});

Deno.test("/metrics only when network monitoring is on", async () => {
  const { a } = api();
  assert.equal((await a.handle(get("/metrics"))).status, 404);
  const { a: m } = api({ metrics: () => Promise.resolve("runner_vm_ingress_bytes_total 1\n") });
  const res = await m.handle(get("/metrics"));
  assert.equal(res.status, 200);
  assert.equal(await res.text(), "runner_vm_ingress_bytes_total 1\n");
});
