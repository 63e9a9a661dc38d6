/**
 * The build pipeline: input image -> unpacked root -> merge steps -> guest plan, shipped binaries,
 * modules and Deno apps -> ext4 -> qcow2 -> OCI archive (-> containerd). Every step is logged as
 * a JSON line. Intermediate files live in a work dir under the cache and are removed; outputs are
 * written under temporary names and renamed only when complete, so a failure leaves nothing
 * half-written.
 * @module
 */
import { createHash } from "node:crypto";
import { parse as parseYaml } from "yaml";
import { ConfigError, ParseError } from "../../src/lib/errors.ts";
import type { Logger } from "../../src/lib/log.ts";
import { GUEST_MODULES } from "../core/modules.ts";
import { NODE_EXPORTER_ARGS, planGuest, type ShippedBinary } from "../core/guest.ts";
import { normaliseRef } from "../core/oci.ts";
import { type BuilderSpec, parseBuilderSpec, parseMerge } from "../core/spec.ts";
import { resolveUser } from "../core/users.ts";
import { availableApps, shipDenoApp } from "./deno_app.ts";
import { fixMtimes, makeExt4, toQcow2, treeUsage } from "./disk.ts";
import { findTool, requireTools, run, step } from "./exec.ts";
import { fetchToLayout, readLayoutRuntime, unpackLayout } from "./input.ts";
import { findCloudKernel } from "./initrd.ts";
import { ensureNodeExporter } from "./node_exporter.ts";
import { writeOciArchive } from "./oci_out.ts";
import {
  applyMerge,
  type ContextFile,
  copyIn,
  resolveInRoot,
  shipBinaries,
  shipModules,
  writeEntries,
} from "./rootfs.ts";

/** Build options (already validated by main.ts). */
export interface BuildOptions {
  readonly src: string;
  readonly specPath?: string;
  /** Output image reference (name inside the archive and containerd). */
  readonly dst: string;
  /** OCI archive path. */
  readonly out: string;
  /** Optional path for the bare qcow2. */
  readonly file?: string;
  /** Disk size in bytes, or undefined for "fit the contents". */
  readonly sizeBytes?: number;
  readonly epochSec: number;
  readonly kernelVersion?: string;
  readonly projectDir: string;
  readonly cacheDir: string;
  readonly keepWork: boolean;
  readonly withDeno: boolean;
  readonly withNodeExporter: boolean;
}

/** What a build produced. */
export interface BuildResult {
  readonly out: string;
  readonly ref: string;
  readonly manifestDigest: string;
  readonly qcowBytes: number;
  readonly archiveBytes: number;
  readonly diskSizeBytes: number;
  readonly kernelVersion: string;
}

/** Host tools used by a build. */
export const BUILD_TOOLS = [
  "skopeo",
  "umoci",
  "mkfs.ext4",
  "debugfs",
  "qemu-img",
  "busybox",
  "ldd",
  "find",
  "touch",
  "tar",
] as const;

/** Reads and validates the spec file (YAML). */
export async function loadSpec(
  path: string | undefined,
): Promise<{ spec: BuilderSpec; text: string }> {
  if (path === undefined) return { spec: parseBuilderSpec({}, "(none)"), text: "" };
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw new ConfigError(`Cannot read vm-builder spec "${path}"`, { cause: err });
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ParseError(`Invalid vm-builder spec ${path}: not YAML`, { cause: err });
  }
  return { spec: parseBuilderSpec(doc, path), text };
}

function uuidFrom(hex: string): string {
  const h = hex.slice(0, 32).split("");
  h[12] = "4";
  h[16] = ((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  const s = h.join("");
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`;
}

/** Host binaries shipped into every guest (name under /neonvm/bin -> host path). */
function hostTools(): Map<string, string> {
  const m = new Map<string, string>();
  for (const t of ["flock", "setpriv", "blkid", "tune2fs", "resize2fs", "setquota"]) {
    const p = findTool(t);
    if (p !== undefined) m.set(t, p);
  }
  return m;
}

/** Runs a full build. */
export async function buildImage(opts: BuildOptions, log: Logger): Promise<BuildResult> {
  const { spec, text: specText } = await loadSpec(opts.specPath);
  const mergeSteps = parseMerge(spec.merge ?? "", new Set(spec.files.map((f) => f.filename)));
  requireTools(BUILD_TOOLS);
  const kernel = opts.kernelVersion ? { version: opts.kernelVersion } : await findCloudKernel();
  if (kernel === undefined) {
    throw new ConfigError(
      "No Debian cloud kernel in /boot (install linux-image-cloud-amd64) and no --kernel-version",
    );
  }
  const moduleDir = `/lib/modules/${kernel.version}`;
  try {
    await Deno.stat(`${moduleDir}/modules.dep`);
  } catch (err) {
    throw new ConfigError(`Kernel modules for ${kernel.version} not found at ${moduleDir}`, {
      cause: err,
    });
  }
  const busybox = findTool("busybox")!;
  const ref = normaliseRef(opts.dst);
  await Deno.mkdir(`${opts.cacheDir}/vm-builder`, { recursive: true });
  const work = await Deno.makeTempDir({ dir: `${opts.cacheDir}/vm-builder`, prefix: "work-" });
  log.info("build started", { src: opts.src, dst: ref, out: opts.out, work });
  const rootfs = `${work}/rootfs`;
  try {
    const layout = `${work}/layout`;
    const kind = await step(log, "fetch", () => fetchToLayout(opts.src, layout), { src: opts.src });
    const { runtime: baseRuntime, configDigest } = await step(
      log,
      "read-config",
      () => readLayoutRuntime(layout),
    );
    await step(log, "unpack", () => unpackLayout(layout, rootfs), { kind });
    await Deno.remove(layout, { recursive: true });

    // Spec files for COPY: inline content is written to the work dir.
    const specDir = opts.specPath
      ? opts.specPath.slice(0, opts.specPath.lastIndexOf("/") + 1) || "./"
      : "./";
    const files: ContextFile[] = [];
    await Deno.mkdir(`${work}/context`, { recursive: true });
    for (const f of spec.files) {
      if (f.content !== undefined) {
        const p = `${work}/context/${f.filename.replaceAll("/", "_")}`;
        await Deno.writeTextFile(p, f.content);
        files.push({ filename: f.filename, hostPath: p });
      } else {
        const p = f.hostPath!.startsWith("/") ? f.hostPath! : `${specDir}${f.hostPath}`;
        try {
          await Deno.stat(p);
        } catch (err) {
          throw new ConfigError(`Spec file "${f.filename}": hostPath ${p} does not exist`, {
            cause: err,
          });
        }
        files.push({ filename: f.filename, hostPath: p });
      }
    }
    const extraEnv = await step(
      log,
      "merge",
      () =>
        applyMerge(rootfs, mergeSteps, {
          files,
          imageEnv: baseRuntime.env,
          onRunOutput: (s, output) =>
            log.debug("merge RUN output", {
              line: s.line,
              command: s.command,
              output: output.slice(-2000),
            }),
        }),
      { steps: mergeSteps.length },
    );
    const runtime = { ...baseRuntime, env: [...baseRuntime.env, ...extraEnv] };

    const readGuest = async (p: string) => {
      try {
        return await Deno.readTextFile(await resolveInRoot(rootfs, p));
      } catch {
        return "";
      }
    };
    const user = resolveUser(
      runtime.user,
      await readGuest("/etc/passwd"),
      await readGuest("/etc/group"),
    );

    // /neonvm from scratch: an image that already has one gets ours instead.
    await Deno.remove(await resolveInRoot(rootfs, "/neonvm", false), { recursive: true }).catch(
      () => undefined,
    );
    await copyIn(rootfs, busybox, "/neonvm/bin/busybox", 0o755);
    const applets = (await run(busybox, ["--list"])).split("\n").filter((a) => a !== "");

    const binaries = hostTools();
    const shipped: ShippedBinary[] = [...binaries.keys()].map((name) => ({ name }));
    if (opts.withDeno) {
      binaries.set("deno", Deno.execPath());
      shipped.push({
        name: "deno",
        env: { DENO_DIR: "/neonvm/deno-dir", DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
      });
    }
    if (opts.withNodeExporter) {
      const ne = await step(log, "node-exporter", () => ensureNodeExporter(opts.cacheDir));
      binaries.set("node-exporter", ne);
      shipped.push({ name: "node-exporter", fixedArgs: NODE_EXPORTER_ARGS });
    }
    const loaderName = await step(log, "ship-binaries", () => shipBinaries(rootfs, binaries), {
      binaries: [...binaries.keys()],
    });
    const apps = opts.withDeno
      ? await availableApps(opts.projectDir)
      : { neonvmd: false, vmMonitor: false };
    if (opts.withDeno) {
      if (!apps.neonvmd || !apps.vmMonitor) {
        log.warn("guest program missing from the project; not shipped", { apps });
      }
      await step(log, "deno-apps", () => shipDenoApp(rootfs, opts.projectDir, apps), { apps });
    }
    const mods = await step(
      log,
      "modules",
      () => shipModules(rootfs, moduleDir, kernel.version, GUEST_MODULES),
      {
        kernel: kernel.version,
      },
    );
    if (mods.missing.length > 0) log.info("modules built in or absent", { modules: mods.missing });

    const entries = planGuest({
      runtime,
      user,
      commands: spec.commands,
      shutdownHook: spec.shutdownHook,
      applets,
      shipped,
      modules: mods.names,
      loaderName,
      denoApps: apps,
      nodeExporter: opts.withNodeExporter,
    });
    await step(log, "guest-files", () => writeEntries(rootfs, entries), {
      entries: entries.length,
    });

    await step(log, "fix-mtimes", () => fixMtimes(rootfs, opts.epochSec));
    const usage = await treeUsage(rootfs);
    const fit =
      Math.ceil((usage.bytes * 1.15 + usage.entries * 256 + 256 * 2 ** 20) / (64 * 2 ** 20)) * 64 *
      2 ** 20;
    const diskSize = opts.sizeBytes ?? fit;
    if (diskSize < usage.bytes * 1.05) {
      throw new ConfigError(
        `Disk size ${diskSize} bytes is too small for the image contents (~${usage.bytes} bytes); use a larger --size or "auto"`,
      );
    }
    const digest = createHash("sha256").update(configDigest).update("\0").update(specText).update(
      "\0",
    )
      .update(ref).digest("hex");
    const uuid = uuidFrom(digest);
    const raw = `${work}/disk.raw`;
    const ext = await step(
      log,
      "mkfs",
      () =>
        makeExt4(rootfs, raw, {
          sizeBytes: diskSize,
          uuid,
          epochSec: opts.epochSec,
          label: "vmroot",
        }),
      {
        sizeBytes: diskSize,
        uuid,
      },
    );
    if (ext.unfixed > 0) {
      log.warn("paths with quotes or newlines keep host change times", { count: ext.unfixed });
    }
    await Deno.remove(rootfs, { recursive: true });
    const qcow = `${work}/disk.qcow2`;
    await step(log, "qcow2", () => toQcow2(raw, qcow));
    await Deno.remove(raw);
    const qcowBytes = (await Deno.stat(qcow)).size;
    const res = await step(log, "oci-archive", () =>
      writeOciArchive({
        diskPath: qcow,
        busyboxPath: busybox,
        outPath: opts.out,
        workDir: work,
        ref,
        mtimeSec: opts.epochSec,
        labels: { "tech.neon.vm-builder.source": opts.src.slice(opts.src.lastIndexOf("/") + 1) },
      }));
    // The bare disk is written only once the archive exists: a failed build leaves neither.
    if (opts.file !== undefined) {
      const tmp = `${opts.file}.tmp-${Deno.pid}`;
      try {
        await Deno.copyFile(qcow, tmp);
        await Deno.rename(tmp, opts.file);
      } catch (err) {
        await Deno.remove(tmp).catch(() => undefined);
        throw err;
      }
    }
    log.info("build done", {
      out: opts.out,
      ref,
      manifestDigest: res.manifestDigest,
      qcowBytes,
      archiveBytes: res.archiveBytes,
      diskSizeBytes: diskSize,
    });
    return {
      out: opts.out,
      ref,
      manifestDigest: res.manifestDigest,
      qcowBytes,
      archiveBytes: res.archiveBytes,
      diskSizeBytes: diskSize,
      kernelVersion: kernel.version,
    };
  } finally {
    if (opts.keepWork) log.info("work dir kept", { work });
    else await Deno.remove(work, { recursive: true }).catch(() => undefined);
  }
}
