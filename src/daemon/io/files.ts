/**
 * neonvmd's file sync target (reference §6.7, §8.1): writes a file set into a directory with the
 * Kubernetes atomic-writer layout (`..data` → timestamped dir, one symlink per file) and computes
 * the checksum of what `..data` holds. Must not follow paths outside the requested directory.
 * @module
 */
import { filesChecksum } from "../../api/daemon_api_checksum.ts";

/** Reads the files under `<dir>/..data` (regular files only). Missing dir → empty set. */
export async function readDataFiles(dir: string): Promise<Record<string, Uint8Array>> {
  const out: Record<string, Uint8Array> = {};
  try {
    for await (const e of Deno.readDir(`${dir}/..data`)) {
      const p = `${dir}/..data/${e.name}`;
      const st = await Deno.stat(p);
      if (st.isFile) out[e.name] = await Deno.readFile(p);
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return {};
    throw e;
  }
  return out;
}

/** Checksum of `<dir>/..data`. */
export async function dataChecksum(dir: string): Promise<string> {
  return filesChecksum(await readDataFiles(dir));
}

/**
 * Atomically replaces the file set of `dir`: new timestamped dir, `..data_tmp` symlink renamed
 * over `..data`, per-file symlinks, then the old dir and stale links removed. `stamp` names the
 * new dir (passed in so callers control it).
 */
export async function writeAtomic(
  dir: string,
  files: Readonly<Record<string, Uint8Array>>,
  stamp: string,
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  let oldTarget: string | undefined;
  try {
    oldTarget = await Deno.readLink(`${dir}/..data`);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const tsDir = `..${stamp}`;
  await Deno.mkdir(`${dir}/${tsDir}`, { mode: 0o755 });
  for (const [name, data] of Object.entries(files)) {
    await Deno.writeFile(`${dir}/${tsDir}/${name}`, data, { mode: 0o644 });
    await Deno.chmod(`${dir}/${tsDir}/${name}`, 0o644);
  }
  await Deno.remove(`${dir}/..data_tmp`).catch(() => {});
  await Deno.symlink(tsDir, `${dir}/..data_tmp`);
  await Deno.rename(`${dir}/..data_tmp`, `${dir}/..data`);
  for (const name of Object.keys(files)) {
    try {
      await Deno.lstat(`${dir}/${name}`);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      await Deno.symlink(`..data/${name}`, `${dir}/${name}`);
    }
  }
  // Remove links to files that are gone, and the previous data dir.
  for await (const e of Deno.readDir(dir)) {
    if (e.isSymlink && !e.name.startsWith("..") && !(e.name in files)) {
      const target = await Deno.readLink(`${dir}/${e.name}`);
      if (target.startsWith("..data/")) await Deno.remove(`${dir}/${e.name}`);
    }
  }
  if (oldTarget !== undefined && oldTarget !== tsDir && oldTarget.startsWith("..")) {
    await Deno.remove(`${dir}/${oldTarget}`, { recursive: true });
  }
}
