/**
 * Builds the Postgres example guest from nothing: a Debian bookworm root file system with
 * PostgreSQL 15 made by debootstrap (cached under /var/cache/neonvm-ts/vm-examples/pg16), packed
 * into an OCI layout, then turned into a NeonVM image by vm-builder with spec.yaml. Why 15: the
 * reachable Debian mirrors (bookworm, bookworm-updates, -security, -backports) carry no
 * postgresql-16 and apt.postgresql.org is unreachable; the directory keeps the name the task uses.
 *
 * Usage: deno task vm-builder example pg16 [--out FILE] [--dst REF] [--import] [--rebuild-rootfs]
 * @module
 */
import { parseArgs } from "node:util";
import { errorChainMessage } from "../../src/lib/errors.ts";
import { createLogger } from "../../src/lib/log.ts";
import { buildImage } from "../../vm-builder/io/build.ts";
import { findContainerdSockets, importIntoContainerd } from "../../vm-builder/io/containerd.ts";
import { requireTools, run, step } from "../../vm-builder/io/exec.ts";
import { writeLayoutFromDir } from "../../vm-builder/io/oci_layout.ts";

const CACHE = Deno.env.get("NEONVM_CACHE") ?? "/var/cache/neonvm-ts";
const HERE = new URL(".", import.meta.url).pathname.replace(/\/$/, "");
const PROJECT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const DIR = `${CACHE}/vm-examples/pg16`;
const MIRROR = Deno.env.get("DEBIAN_MIRROR") ?? "http://deb.debian.org/debian";
/** Packages on top of debootstrap's minbase. */
const PACKAGES = ["postgresql-15", "postgresql-client-15"];
/** Bump when the rootfs preparation changes, to rebuild the cached layout. */
const PREP_VERSION = "1";

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.lstat(p);
    return true;
  } catch {
    return false;
  }
}

const enc = new TextEncoder();

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    strict: true,
    options: {
      out: { type: "string" },
      dst: { type: "string" },
      import: { type: "boolean" },
      "rebuild-rootfs": { type: "boolean" },
    },
  });
  const log = createLogger("vm-examples.pg16");
  const t0 = performance.now();
  try {
    requireTools(["debootstrap", "tar", "gzip"]);
    await Deno.mkdir(`${CACHE}/debootstrap/debs`, { recursive: true });
    const rootfs = `${DIR}/rootfs`;
    if (values["rebuild-rootfs"]) {
      await Deno.remove(rootfs, { recursive: true }).catch(() => undefined);
      await Deno.remove(`${DIR}/layout`, { recursive: true }).catch(() => undefined);
    }
    if (!(await exists(`${rootfs}/.neonvm-example-ready`))) {
      const tmp = `${DIR}/rootfs.tmp`;
      await Deno.remove(tmp, { recursive: true }).catch(() => undefined);
      await Deno.mkdir(DIR, { recursive: true });
      await step(log, "debootstrap", () =>
        run("debootstrap", [
          "--variant=minbase",
          `--include=${PACKAGES.join(",")}`,
          `--cache-dir=${CACHE}/debootstrap/debs`,
          "bookworm",
          tmp,
          MIRROR,
        ]), { packages: PACKAGES, mirror: MIRROR });
      await step(log, "trim-rootfs", async () => {
        // Docs, man pages, translations, apt state and the cluster the package made are not needed:
        // the entrypoint initialises its own data directory on first boot.
        for (const p of ["usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale"]) {
          await run("find", [`${tmp}/${p}`, "-mindepth", "1", "-delete"]).catch(() => "");
        }
        for (
          const p of [
            "var/cache/apt",
            "var/lib/apt/lists",
            "var/lib/postgresql/15",
            "etc/postgresql/15",
          ]
        ) {
          await Deno.remove(`${tmp}/${p}`, { recursive: true }).catch(() => undefined);
        }
        await run("find", [`${tmp}/var/log`, "-type", "f", "-delete"]);
        await Deno.writeTextFile(`${tmp}/.neonvm-example-ready`, PREP_VERSION + "\n");
      });
      await Deno.remove(rootfs, { recursive: true }).catch(() => undefined);
      await Deno.rename(tmp, rootfs);
      await Deno.remove(`${DIR}/layout`, { recursive: true }).catch(() => undefined);
    }
    const layout = `${DIR}/layout`;
    if (!(await exists(`${layout}/index.json`))) {
      await Deno.remove(layout, { recursive: true }).catch(() => undefined);
      await step(log, "pack-layout", () =>
        writeLayoutFromDir(rootfs, `${layout}.tmp`, {
          env: [
            "PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG=C.UTF-8",
          ],
          entrypoint: ["/usr/local/bin/pg-entrypoint.sh"],
          user: "postgres",
          workingDir: "/var/lib/postgresql",
        }, "pg15"));
      await Deno.rename(`${layout}.tmp`, layout);
    }
    const out = values.out ?? `${CACHE}/images/vm-pg16.oci.tar`;
    await Deno.mkdir(out.slice(0, out.lastIndexOf("/")), { recursive: true });
    const result = await buildImage({
      src: `${layout}:pg15`,
      specPath: `${HERE}/spec.yaml`,
      dst: values.dst ?? "localhost/neonvm-ts/vm-pg16:dev",
      out,
      epochSec: Number(Deno.env.get("SOURCE_DATE_EPOCH") ?? "0"),
      projectDir: PROJECT,
      cacheDir: CACHE,
      keepWork: false,
      withDeno: true,
      withNodeExporter: true,
    }, log.child("build"));
    let imported: string[] = [];
    if (values.import) {
      const sockets = await findContainerdSockets(PROJECT);
      if (sockets.length === 0) {
        throw new Error("--import: no containerd socket found (is the local cluster up?)");
      }
      await step(log, "import", () => importIntoContainerd(result.out, sockets), { sockets });
      imported = sockets;
    }
    const totalMs = Math.round(performance.now() - t0);
    Deno.stdout.writeSync(enc.encode(JSON.stringify({ ...result, imported, totalMs }) + "\n"));
    return 0;
  } catch (err) {
    log.error("pg16 example build failed", { error: err });
    Deno.stderr.writeSync(enc.encode(`vm-examples/pg16: ${errorChainMessage(err)}\n`));
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main());
