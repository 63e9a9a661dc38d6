/**
 * Live migration between two runners on real QEMU (TCG), as the controller drives it (reference
 * §5.6): the target runner starts with `RECEIVE_MIGRATION=true` (`-incoming tcp:0:20187`), both
 * get the reference's capabilities and parameters, the source `migrate`s with incremental block
 * migration, `query-migrate` reaches `completed`, the source is `quit`, and the guest keeps
 * running on the target (a vCPU hot-add there is seen by the migrated guest). The target then
 * gets SIGTERM with a grace period too short for the guest, so the runner quits QEMU (exit 3).
 * @module
 */
import assert from "node:assert/strict";
import { connectQmp, type QmpClient } from "../../src/lib/qmp/client.ts";
import {
  migrate,
  migrateSetCapabilities,
  migrateSetParameters,
  plugCpu,
  queryMigrate,
  queryStatus,
  quit,
} from "../../src/lib/qmp/commands.ts";
import { MIGRATION_PORT } from "../../src/api/runner_api.ts";
import { canRunRealQemu, poll, startRunner } from "./_harness.ts";

const MiB = 1024 * 1024;
const note = (s: string) => Deno.stderr.writeSync(new TextEncoder().encode(s + "\n"));

async function prepare(qmp: QmpClient): Promise<void> {
  await migrateSetCapabilities(qmp, [
    { capability: "postcopy-ram", state: false },
    { capability: "xbzrle", state: true },
    { capability: "auto-converge", state: true },
    { capability: "zero-blocks", state: true },
  ]);
  await migrateSetParameters(qmp, {
    "xbzrle-cache-size": 256 * MiB,
    "max-bandwidth": 1024 * MiB,
    "multifd-compression": "zstd",
  });
}

Deno.test({
  name: "live migration from one runner to a RECEIVE_MIGRATION runner",
  ignore: !canRunRealQemu(),
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const guest = { cpus: { min: 1, max: 2, use: 1 }, memorySlots: { min: 1, max: 1, use: 1 } };
    await using source = await startRunner({ guest });
    await source.waitForReport((x) => x.cpusOnline === 1, 300_000);
    // A tiny grace period: SIGTERM at the end must fall back to `quit` (exit status 3).
    await using target = await startRunner({
      guest,
      receiveMigration: true,
      extraFlags: ["-shutdown-grace-seconds", "0.05"],
    });
    const sq = await connectQmp(source.qmp, { timeoutMs: 5000 });
    const tq = await poll(
      () => connectQmp(target.qmp, { timeoutMs: 2000 }),
      60_000,
      "target QMP",
    );
    try {
      assert.equal((await queryStatus(tq)).status, "inmigrate");
      await prepare(sq);
      await prepare(tq);
      const t0 = Date.now();
      await migrate(sq, { uri: `tcp:${target.podIp}:${MIGRATION_PORT}`, inc: true, blk: false });
      const info = await poll(
        async () => {
          const i = await queryMigrate(sq);
          if (i.status === "failed") throw new Error(`migration failed: ${i["error-desc"]}`);
          return i.status === "completed" ? i : undefined;
        },
        240_000,
        "migration to complete",
      );
      note(
        `migration completed in ${Date.now() - t0} ms (QEMU total ${info["total-time"]} ms, ` +
          `downtime ${info.downtime} ms, ${info.ram?.transferred} bytes)`,
      );
      assert.ok((info.ram?.total ?? 0) > 0);
      // The target resumes the guest right after the source reports completion.
      await poll(
        async () => (await queryStatus(tq)).status === "running" ? true : undefined,
        30_000,
        "target to run the guest",
      );
      await quit(sq).catch(() => {});
      assert.equal((await source.exited).code, 0);
      // The guest now lives on the target: hot-add a vCPU there and watch its console.
      await plugCpu(tq);
      await target.waitForReport((x) => x.cpusOnline === 2, 60_000);
    } finally {
      await sq.close();
      await tq.close();
    }
    target.signal("SIGTERM");
    assert.equal((await target.exited).code, 3, "guest cannot power off in 50 ms: forced quit");
    assert.match(target.logs(), /"outcome":"forced-shutdown"/);
  },
});
