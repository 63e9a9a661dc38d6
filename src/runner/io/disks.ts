/**
 * Creates the images of a disk plan (reference §6.2, §6.3): the runtime ISO (label `vmruntime`),
 * configMap/secret and SSH-key ISOs of the regular files in a directory, emptyDisk ext4 and swap
 * images converted to qcow2, and grows the root disk to `rootDisk.size`. Images are chowned to
 * 36:34 (qemu:kvm) where permitted. Must not modify the source directories.
 * @module
 */
import type { Logger } from "../../lib/log.ts";
import type { DiskImageTask } from "../core/disks.ts";
import { runCommand } from "./exec.ts";
import { z } from "zod";

const QCOW2_OPTS = ["-O", "qcow2", "-o", "cluster_size=2M,lazy_refcounts=on"];

async function chownQemu(path: string): Promise<void> {
  try {
    await Deno.chown(path, 36, 34);
  } catch (e) {
    // Not root (tests): QEMU then runs as the same user and can read the file anyway.
    if (!(e instanceof Deno.errors.PermissionDenied || e instanceof Deno.errors.NotCapable)) {
      throw e;
    }
  }
}

/** Writes an ISO 9660 (Rock Ridge + Joliet) image of `dir` with volume label `label`. */
export async function makeIso(
  dir: string,
  label: string,
  out: string,
  logger?: Logger,
): Promise<void> {
  await runCommand([
    "genisoimage",
    "-quiet",
    "-input-charset",
    "utf-8",
    "-R",
    "-J",
    "-V",
    label,
    "-o",
    out,
    dir,
  ], { ...(logger ? { logger } : {}) });
  await chownQemu(out);
}

/** Builds the runtime ISO from the plan's files. */
export async function makeRuntimeIso(
  files: Readonly<Record<string, string>>,
  out: string,
  logger?: Logger,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "neonvm-runtime-" });
  try {
    for (const [name, content] of Object.entries(files)) {
      await Deno.writeTextFile(`${dir}/${name}`, content);
      await Deno.chmod(`${dir}/${name}`, name.endsWith(".sh") ? 0o755 : 0o644);
    }
    await makeIso(dir, "vmruntime", out, logger);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Copies the regular files of `src` (following symlinks to files; skipping directories, links
 * to directories and the atomic-writer's `..` entries) into a staging dir and makes an ISO.
 */
export async function makeDirIso(
  src: string,
  label: string,
  out: string,
  logger?: Logger,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "neonvm-iso-" });
  try {
    try {
      for await (const e of Deno.readDir(src)) {
        if (e.name.startsWith("..")) continue;
        const st = await Deno.stat(`${src}/${e.name}`);
        if (!st.isFile) continue;
        await Deno.copyFile(`${src}/${e.name}`, `${dir}/${e.name}`);
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      logger?.warn("disk source directory missing; building an empty ISO", { src });
    }
    await makeIso(dir, label, out, logger);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Creates one image of the plan. */
export async function createDiskImage(task: DiskImageTask, logger?: Logger): Promise<void> {
  const log = logger ? { logger } : {};
  switch (task.kind) {
    case "iso":
      return await makeDirIso(task.sourceDir, task.name, task.path, logger);
    case "emptyDisk": {
      const raw = `${task.path}.raw`;
      try {
        await runCommand([
          "mkfs.ext4",
          "-q",
          "-F",
          "-L",
          task.name,
          "-b",
          "4096",
          raw,
          String(Math.floor(task.sizeBytes / 4096)),
        ], log);
        await runCommand(
          ["qemu-img", "convert", "-q", "-f", "raw", ...QCOW2_OPTS, raw, task.path],
          log,
        );
      } finally {
        await Deno.remove(raw).catch(() => {});
      }
      return await chownQemu(task.path);
    }
    case "swap": {
      const raw = `${task.path}.raw`;
      try {
        await runCommand(["truncate", "-s", String(task.sizeBytes), raw], log);
        await runCommand(["mkswap", "-L", "swapdisk", raw], log);
        await runCommand(
          ["qemu-img", "convert", "-q", "-f", "raw", ...QCOW2_OPTS, raw, task.path],
          log,
        );
      } finally {
        await Deno.remove(raw).catch(() => {});
      }
      return await chownQemu(task.path);
    }
  }
}

const QemuImgInfoSchema = z.object({ "virtual-size": z.number().int().nonnegative() }).loose();

/** Grows the root disk to `sizeBytes` when that is larger than its virtual size. */
export async function growRootDisk(
  path: string,
  sizeBytes: number | undefined,
  logger?: Logger,
): Promise<boolean> {
  if (sizeBytes === undefined) return false;
  const log = logger ? { logger } : {};
  const info = QemuImgInfoSchema.parse(
    JSON.parse((await runCommand(["qemu-img", "info", "--output=json", path], log)).stdout),
  );
  if (sizeBytes <= info["virtual-size"]) return false;
  await runCommand(["qemu-img", "resize", "-q", path, String(sizeBytes)], log);
  return true;
}
