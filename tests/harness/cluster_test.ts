/**
 * requireCluster's refusal: with no cluster state it throws an error that tells the user to run
 * `deno task cluster:up`, and it rejects a malformed state file the same way.
 * @module
 */
import assert from "node:assert/strict";
import { requireCluster } from "./cluster.ts";

async function withClusterDir(dir: string, fn: () => Promise<void>): Promise<void> {
  const prev = Deno.env.get("NEONVM_CLUSTER_DIR");
  Deno.env.set("NEONVM_CLUSTER_DIR", dir);
  try {
    await fn();
  } finally {
    if (prev === undefined) Deno.env.delete("NEONVM_CLUSTER_DIR");
    else Deno.env.set("NEONVM_CLUSTER_DIR", prev);
  }
}

Deno.test("requireCluster tells the user to run cluster:up when there is no cluster", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await withClusterDir(dir, async () => {
      await assert.rejects(requireCluster(), /not up.*deno task cluster:up/s);
      await Deno.writeTextFile(`${dir}/cluster.json`, JSON.stringify({ version: 1 }));
      await assert.rejects(requireCluster(), /not a valid cluster state file.*cluster:up/s);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
