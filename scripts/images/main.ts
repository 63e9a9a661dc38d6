/**
 * `deno run -A scripts/images/main.ts build [runtime|pause|all]` builds the local images as
 * docker-archive tars under the cache (printing each archive's path and reference), and
 * `... import <archive.tar> [--base-name <repo>]` imports any image archive (docker-archive, or
 * OCI archive; for OCI, `--base-name` names tag-only refs) into every node of the running cluster.
 * Composition only: the work is in build.ts and import.ts.
 * @module
 */
import { parseArgs } from "node:util";
import { createLogger } from "../../src/lib/log.ts";
import { errorToJson } from "../../src/lib/errors.ts";
import { StepError, writeStdout } from "../cluster/exec.ts";
import {
  ClusterStateSchema,
  controlPlanePaths,
  DEFAULT_CACHE_DIR,
  DEFAULT_CLUSTER_DIR,
} from "../cluster/layout.ts";
import { buildPause, buildRuntime, type BuiltImage } from "./build.ts";
import { importArchive } from "./import.ts";

async function main(): Promise<number> {
  const { positionals, values } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: { "base-name": { type: "string" } },
  });
  const [command, arg] = positionals;
  const log = createLogger("images");
  const cacheDir = Deno.env.get("NEONVM_CACHE") ?? DEFAULT_CACHE_DIR;
  const clusterDir = Deno.env.get("NEONVM_CLUSTER_DIR") ?? DEFAULT_CLUSTER_DIR;
  const logDir = controlPlanePaths(clusterDir).logs;
  await Deno.mkdir(logDir, { recursive: true });
  const ctx = {
    repo: new URL("../..", import.meta.url).pathname.replace(/\/$/, ""),
    cacheDir,
    logDir,
    log,
  };
  try {
    if (command === "build") {
      const which = arg ?? "all";
      if (!["runtime", "pause", "all"].includes(which)) {
        throw new StepError("images", `unknown image ${which}`);
      }
      const built: BuiltImage[] = [];
      if (which !== "runtime") built.push(await buildPause(ctx));
      if (which !== "pause") built.push(await buildRuntime(ctx));
      for (const b of built) writeStdout(JSON.stringify(b) + "\n");
      return 0;
    }
    if (command === "import" && arg) {
      const stateFile = controlPlanePaths(clusterDir).stateFile;
      const text = await Deno.readTextFile(stateFile).catch(() => {
        throw new StepError(
          "import",
          `no running cluster (${stateFile}); run deno task cluster:up`,
        );
      });
      const state = ClusterStateSchema.parse(JSON.parse(text));
      for (const node of state.nodes) {
        const started = Date.now();
        const refs = await importArchive(
          node,
          arg,
          `${logDir}/${node.name}-images.log`,
          values["base-name"],
        );
        log.info("imported", { node: node.name, refs, seconds: (Date.now() - started) / 1000 });
      }
      return 0;
    }
    log.error(
      "usage: main.ts build [runtime|pause|all] | import <archive.tar> [--base-name repo]",
      {},
    );
    return 2;
  } catch (err) {
    const fields: Record<string, unknown> = { error: errorToJson(err) };
    if (err instanceof StepError) {
      fields.step = err.step;
      if (err.logFile) fields.logFile = err.logFile;
    }
    log.error(`images ${command} failed`, fields);
    return 1;
  }
}

Deno.exit(await main());
