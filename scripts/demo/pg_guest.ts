/**
 * The demo's Postgres guest image: vm-examples/pg16's prepared root file system (its OCI layout,
 * built by `deno task vm-builder example pg16` when missing) turned into a NeonVM image by
 * vm-builder with scripts/demo/pg-demo-spec.yaml (the example's spec with a vm-monitor that does
 * not depend on psql; see the comment in that file), then imported into every node. Cached under
 * /var/cache/neonvm-ts/demo/ by the spec's content. Must not change vm-examples/ or the cluster.
 *
 * Usage: deno run -A scripts/demo/pg_guest.ts [--rebuild]
 * @module
 */
import { DEFAULT_CACHE_DIR } from "../cluster/layout.ts";
import { exists, sha256Hex } from "../cluster/exec.ts";
import { listImages } from "../images/import.ts";
import { buildImage } from "../../vm-builder/io/build.ts";
import type { Logger } from "../../src/lib/log.ts";
import type { DemoCluster } from "./cluster.ts";
import { PG_GUEST_IMAGE } from "./manifests.ts";

const HERE = new URL(".", import.meta.url).pathname.replace(/\/$/, "");
const REPO = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
/** The example's cached OCI layout (vm-examples/pg16/build.ts). */
export const PG16_LAYOUT = `${DEFAULT_CACHE_DIR}/vm-examples/pg16/layout`;
const SPEC = `${HERE}/pg-demo-spec.yaml`;

async function key(): Promise<string> {
  const [spec, entry] = await Promise.all([
    Deno.readTextFile(SPEC),
    Deno.readTextFile(`${REPO}/vm-examples/pg16/pg-entrypoint.sh`),
  ]);
  const idx = await Deno.stat(`${PG16_LAYOUT}/index.json`);
  return (await sha256Hex(`${spec}\n${entry}\n${idx.mtime?.getTime()}`)).slice(0, 16);
}

/** Builds the demo guest archive unless an identical one exists; returns its path. */
export async function buildPgGuest(log: Logger, rebuild = false): Promise<string> {
  if (!(await exists(`${PG16_LAYOUT}/index.json`))) {
    throw new Error(`${PG16_LAYOUT} missing: run deno task vm-builder example pg16 first`);
  }
  const dir = `${DEFAULT_CACHE_DIR}/demo`;
  await Deno.mkdir(dir, { recursive: true });
  const out = `${dir}/vm-pg16-demo-${await key()}.oci.tar`;
  if (!rebuild && (await exists(out))) return out;
  log.info("building the demo Postgres guest (vm-builder, a few minutes under load)", { out });
  const t0 = performance.now();
  await buildImage({
    src: `${PG16_LAYOUT}:pg15`,
    specPath: SPEC,
    dst: PG_GUEST_IMAGE.replace(/^docker\.io\//, ""),
    out: `${out}.tmp`,
    epochSec: 0,
    projectDir: REPO,
    cacheDir: DEFAULT_CACHE_DIR,
    keepWork: false,
    withDeno: true,
    withNodeExporter: true,
  }, log.child("vm-builder"));
  await Deno.rename(`${out}.tmp`, out);
  log.info("demo Postgres guest built", {
    out,
    seconds: Math.round((performance.now() - t0) / 1000),
  });
  return out;
}

/** Imports `archive` into every node whose containerd lacks this exact archive's image. */
export async function importPgGuest(log: Logger, c: DemoCluster, archive: string): Promise<void> {
  for (let i = 0; i < c.nodeCount; i++) {
    const sock = `/run/neonvm-ts/node-${i}/containerd.sock`;
    const marker = `${DEFAULT_CACHE_DIR}/demo/imported-node-${i}-pg-guest`;
    const node = { name: `node-${i}`, containerdSocket: sock };
    const recorded = await Deno.readTextFile(marker).catch(() => "");
    if (recorded.trim() === archive && (await listImages(node)).includes(PG_GUEST_IMAGE)) continue;
    log.info("importing the Postgres guest image", { node: node.name, archive });
    const t0 = performance.now();
    const r = await new Deno.Command("ctr", {
      args: ["-a", sock, "-n", "k8s.io", "images", "import", "--platform", "linux/amd64", archive],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!r.success) {
      throw new Error(`ctr import into node-${i}: ${new TextDecoder().decode(r.stderr)}`);
    }
    await Deno.writeTextFile(marker, archive + "\n");
    log.info("imported", { node: node.name, seconds: Math.round((performance.now() - t0) / 1000) });
  }
}

if (import.meta.main) {
  const { createLogger } = await import("../../src/lib/log.ts");
  const { loadCluster } = await import("./cluster.ts");
  const log = createLogger("demo.pg-guest");
  const archive = await buildPgGuest(log, Deno.args.includes("--rebuild"));
  await importPgGuest(log, await loadCluster(), archive);
}
