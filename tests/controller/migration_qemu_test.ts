/**
 * The controller's live-migration QMP sequence (`RealMigrationQmp`: vCPU sync, capabilities,
 * parameters, `migrate` to `tcp:<target>:20187`, progress, quit) between two real runners and QEMU
 * guests (TCG) on this host, each in its own network namespace (tests/runner harness), without a
 * cluster. The target runner gets `RECEIVE_MIGRATION=true`; the harness routes each namespace
 * through the host, so the two reach each other. Needs root and QEMU.
 * It used to fail now and then at its last step: QEMU exits on `quit` and may reset the QMP
 * connection before the reply is read; `quit` (src/lib/qmp/commands.ts) now counts that as done.
 * @module
 */
import assert from "node:assert/strict";
import { connectQmp } from "../../src/lib/qmp/client.ts";
import { countPluggedCpus, plugCpu, queryStatus, unplugCpu } from "../../src/lib/qmp/commands.ts";
import { RealMigrationQmp } from "../../src/controller/io/migration_qmp.ts";
import { canRunRealQemu, poll, startRunner } from "../runner/_harness.ts";

Deno.test({
  name: "migration QMP sequence moves a running guest between two real runners",
  ignore: !canRunRealQemu(),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const guest = {
      cpus: { min: "250m", max: 2, use: "250m" },
      memorySlots: { min: 1, max: 2, use: 1 },
    };
    await using source = await startRunner({ guest });
    await source.waitForReport((x) => x.cpusOnline === 1, 240_000);
    // One hot-plugged vCPU on the source, to check the target gets it before the stream.
    const sq = await connectQmp(source.qmp, { timeoutMs: 5000 });
    try {
      await plugCpu(sq);
      await source.waitForReport((x) => x.cpusOnline === 2, 60_000);
    } finally {
      await sq.close();
    }

    await using target = await startRunner({ guest, receiveMigration: true });
    const incoming = await poll(
      async () => {
        try {
          const q = await connectQmp(target.qmp, { timeoutMs: 2000 });
          try {
            return (await queryStatus(q)).status;
          } finally {
            await q.close();
          }
        } catch {
          return undefined; // Not listening yet.
        }
      },
      60_000,
      "target QMP",
    );
    assert.equal(incoming, "inmigrate");

    const mq = new RealMigrationQmp();
    await mq.syncTargetCpus(source.podIp, target.podIp, 20183);
    const tq = await connectQmp(target.qmp, { timeoutMs: 5000 });
    try {
      assert.equal(await countPluggedCpus(tq), 2);
    } finally {
      await tq.close();
    }
    const t0 = Date.now();
    await mq.start(source.podIp, target.podIp, 20183, {
      allowPostCopy: false,
      autoConverge: true,
      incremental: true,
      maxBandwidthBytes: 1024 ** 3,
    });
    const done = await poll(
      async () => {
        const p = await mq.progress(source.podIp, 20183);
        return p.status === "completed" || p.status === "failed" ? p : undefined;
      },
      240_000,
      "migration to finish",
    );
    const tookMs = Date.now() - t0;
    assert.equal(done.status, "completed", JSON.stringify(done));
    assert.ok((done.info.ram?.transferred ?? 0) > 0);
    const tq2 = await connectQmp(target.qmp, { timeoutMs: 5000 });
    try {
      // The source reports completed a moment before the target has loaded the last state.
      await poll(
        async () => (await queryStatus(tq2)).status === "running" ? true : undefined,
        30_000,
        "target running",
      );
      assert.equal(await countPluggedCpus(tq2), 2);
    } finally {
      await tq2.close();
    }
    // The guest keeps running on the target: it handles a vCPU hot-remove there.
    const before = target.console().length;
    const tq3 = await connectQmp(target.qmp, { timeoutMs: 5000 });
    try {
      assert.ok(await unplugCpu(tq3));
    } finally {
      await tq3.close();
    }
    await target.waitForConsole(/cpus_online=1/, 120_000, before);
    await mq.quit(source.podIp, 20183);
    Deno.stdout.writeSync(new TextEncoder().encode(
      `migration completed in ${tookMs} ms, downtime ${done.info.downtimeMs} ms, ram ${done.info.ram?.transferred} bytes\n`,
    ));
  },
});
