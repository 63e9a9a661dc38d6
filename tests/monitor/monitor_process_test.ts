/**
 * The monitor as a separate process against a fake cgroup v2 tree (this host has cgroup v1 with
 * only hugetlb on the v2 mount, so a real v2 memory cgroup exists only inside a guest): initial
 * limits written, a fast allocation answered by an `UpscaleRequest` within 1 s of crossing the
 * threshold, a downscale below usage + 100 MiB refused, an upscale raising the limits, bad frames
 * answered without dropping the connection, and a clean SIGTERM exit.
 * @module
 */
import assert from "node:assert/strict";
import { encodeAgentMessage, parseMonitorMessage } from "../../src/api/monitor_protocol.ts";
import { GiB, MiB } from "../../src/api/quantity.ts";
import { fakeCgroupTree, writeUsage } from "../../src/monitor/io/_fakes.ts";
import { connectAgent, startMonitor } from "./_monitor_process.ts";

Deno.test({
  name: "monitor process: fast allocation -> UpscaleRequest < 1 s; downscale refusal; limits",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const root = await fakeCgroupTree("neon-postgres", 200 * MiB);
    const meminfo = `${root}/meminfo`;
    await Deno.writeTextFile(meminfo, `MemTotal:       ${(2 * GiB) / 1024} kB\n`);
    const cg = `${root}/neon-postgres`;
    try {
      await using mon = await startMonitor([
        "--cgroup=neon-postgres",
        `--cgroup-root=${root}`,
        `--meminfo=${meminfo}`,
      ]);
      // Initial limits from MemTotal (2 GiB, no LFC): max = 2048 MiB, high = 1948 MiB.
      assert.equal(await Deno.readTextFile(`${cg}/memory.max`), String(2048 * MiB));
      assert.equal(await Deno.readTextFile(`${cg}/memory.high`), String(1948 * MiB));
      const agent = await connectAgent(mon.url);

      agent.send(encodeAgentMessage({ type: "HealthCheck", content: {}, id: 2 }));
      assert.equal(await agent.next(), '{"type":"HealthCheck","id":2}');

      // Let a few idle samples in, then a bad frame: answered, connection kept.
      await new Promise((r) => setTimeout(r, 400));
      agent.send("{oops");
      const invalid = parseMonitorMessage(await agent.next());
      assert.ok(invalid.ok && invalid.value.type === "InvalidMessage");

      // Downscale to 1 GiB with 800 MiB in use: limit 1 GiB-100-100 = 824 MiB, threshold 700 MiB
      // < 800 + 100 MiB -> refused.
      await writeUsage(cg, 800 * MiB, 900 * MiB);
      await new Promise((r) => setTimeout(r, 700));
      agent.send(encodeAgentMessage({
        type: "DownscaleRequest",
        content: { target: { cpu: 0.25, mem: 1 * GiB } },
        id: 4,
      }));
      const refused = parseMonitorMessage(await agent.next());
      assert.ok(
        refused.ok && refused.value.type === "DownscaleResult" && !refused.value.Ok,
        JSON.stringify(refused),
      );
      assert.equal(await Deno.readTextFile(`${cg}/memory.max`), String(2048 * MiB), "unchanged");

      // Fast allocation: threshold is 85 % of memory.high 1948 MiB = 1655.8 MiB. Jump to 1900.
      const crossedAt = performance.now();
      await writeUsage(cg, 1900 * MiB, 1950 * MiB);
      const req = parseMonitorMessage(await agent.next(3_000));
      const latencyMs = performance.now() - crossedAt;
      assert.ok(req.ok && req.value.type === "UpscaleRequest", JSON.stringify(req));
      assert.equal(req.value.id % 2, 1, "monitor ids are odd");
      assert.ok(latencyMs < 1_000, `UpscaleRequest after ${latencyMs.toFixed(0)} ms`);
      // deno-lint-ignore no-console
      console.log(`upscale request latency after crossing: ${latencyMs.toFixed(0)} ms`);

      // The agent grants 4 GiB: limits rise (usable 3996 MiB, high 3896 MiB) and it confirms.
      agent.send(encodeAgentMessage({
        type: "UpscaleNotification",
        content: { granted: { cpu: 1, mem: 4 * GiB } },
        id: 6,
      }));
      assert.equal(await agent.next(), '{"type":"UpscaleConfirmation","id":6}');
      assert.equal(await Deno.readTextFile(`${cg}/memory.max`), String(3996 * MiB));
      assert.equal(await Deno.readTextFile(`${cg}/memory.high`), String(3896 * MiB));

      await agent.close();
      assert.equal(await mon.stop(), 0);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name: "monitor process: explicit missing cgroup is fatal; implicit default is optional",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const root = await fakeCgroupTree("other");
    try {
      await assert.rejects(
        startMonitor([`--cgroup=neon-postgres`, `--cgroup-root=${root}`]),
        /exited early \(1\)/,
      );
      await using mon = await startMonitor([`--cgroup-root=${root}`]);
      assert.ok(
        mon.logs.some((l) =>
          l.msg === "default cgroup unavailable; running without cgroup management"
        ),
      );
      const agent = await connectAgent(mon.url);
      agent.send(encodeAgentMessage({
        type: "DownscaleRequest",
        content: { target: { cpu: 0.25, mem: 256 * MiB } },
        id: 2,
      }));
      assert.match(
        await agent.next(),
        /"Ok":true,"Status":"monitor is not managing cgroup or file cache"/,
      );
      await agent.close();
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
