/**
 * Turning the assembled root into the VM's root disk: fixed mtimes on every entry, an ext4 image
 * labelled `vmroot` made with `mkfs.ext4 -d` (fixed UUID and hash seed), inode and superblock
 * times reset so the image is byte-for-byte reproducible, then `qemu-img convert` to qcow2. Does
 * not choose sizes or names: the caller does.
 * @module
 */
import { normaliseSuperblock, superInfo } from "../core/ext4_super.ts";
import { run } from "./exec.ts";

/** Sets atime and mtime of every entry under `root` (links themselves, not targets) to `epochSec`. */
export async function fixMtimes(root: string, epochSec: number): Promise<void> {
  await run("find", [root, "-exec", "touch", "-h", "-d", `@${epochSec}`, "{}", "+"]);
}

/** Bytes used by the tree (apparent sizes rounded to 4 KiB blocks) and its entry count. */
export async function treeUsage(root: string): Promise<{ bytes: number; entries: number }> {
  const out = await run("find", [root, "-printf", "%s\\n"]);
  let bytes = 0;
  let entries = 0;
  for (const line of out.split("\n")) {
    if (line === "") continue;
    entries++;
    bytes += Math.ceil(Number(line) / 4096) * 4096 + 256;
  }
  return { bytes, entries };
}

/** Relative paths of every entry under `root`, sorted (for the debugfs time fix-up). */
async function listPaths(root: string): Promise<string[]> {
  const out = await run("find", [root, "-mindepth", "1", "-printf", "%P\\0"]);
  return out.split("\0").filter((p) => p !== "").sort();
}

function debugfsQuote(path: string): string | undefined {
  if (/["\\\n]/.test(path)) return undefined;
  return `"/${path}"`;
}

/** Options for {@linkcode makeExt4}. */
export interface Ext4Options {
  readonly sizeBytes: number;
  readonly uuid: string;
  readonly epochSec: number;
  readonly label: string;
}

/**
 * Creates `rawPath` as an ext4 file system holding `root`. Returns how many paths could not have
 * their change/creation times reset (names with quotes or newlines; reported, not fatal).
 */
export async function makeExt4(
  root: string,
  rawPath: string,
  opts: Ext4Options,
): Promise<{ unfixed: number }> {
  await Deno.writeFile(rawPath, new Uint8Array(0));
  await Deno.truncate(rawPath, opts.sizeBytes);
  await run("mkfs.ext4", [
    "-q",
    "-F",
    "-L",
    opts.label,
    "-U",
    opts.uuid,
    "-E",
    `hash_seed=${opts.uuid},root_owner=0:0,lazy_itable_init=0`,
    "-b",
    "4096",
    "-I",
    "256",
    "-d",
    root,
    rawPath,
  ], { env: { ...Deno.env.toObject(), E2FSPROGS_FAKE_TIME: String(opts.epochSec) } });
  // mke2fs copies ctime from the host and stamps crtime with the clock: reset them all.
  const cmds: string[] = [];
  let unfixed = 0;
  const t = String(opts.epochSec);
  // Reserved inodes mke2fs stamps too: 1 (bad blocks), 7 (resize), 8 (journal).
  for (const ino of [1, 7, 8]) {
    for (const field of ["atime", "mtime", "ctime", "crtime"]) {
      cmds.push(`sif <${ino}> ${field} ${t}`);
    }
  }
  for (const p of ["", "lost+found", ...await listPaths(root)]) {
    const q = p === "" ? "/" : debugfsQuote(p);
    if (q === undefined) {
      unfixed++;
      continue;
    }
    for (const field of ["atime", "mtime", "ctime", "crtime"]) cmds.push(`sif ${q} ${field} ${t}`);
  }
  const script = `${rawPath}.debugfs`;
  await Deno.writeTextFile(script, cmds.join("\n") + "\n");
  try {
    await run("debugfs", ["-w", "-f", script, rawPath]);
  } finally {
    await Deno.remove(script);
  }
  await normaliseSuperblocks(rawPath, opts.epochSec);
  return { unfixed };
}

/** Resets the times in the primary and every backup superblock of an ext4 image. */
export async function normaliseSuperblocks(rawPath: string, epochSec: number): Promise<number> {
  using f = await Deno.open(rawPath, { read: true, write: true });
  const sb = new Uint8Array(1024);
  await f.seek(1024, Deno.SeekMode.Start);
  await readFull(f, sb);
  const info = superInfo(sb);
  const groups = Math.ceil(info.blocks / info.blocksPerGroup);
  let fixed = 0;
  for (let g = 0; g < groups; g++) {
    if (!hasSuperBackup(g)) continue;
    const off = g === 0 ? 1024 : g * info.blocksPerGroup * info.blockSize;
    await f.seek(off, Deno.SeekMode.Start);
    const buf = new Uint8Array(1024);
    if ((await readFull(f, buf)) < 1024) break;
    // A backup names its own group; anything else at this offset is data, never touch it.
    if (g > 0 && new DataView(buf.buffer).getUint16(0x5a, true) !== (g & 0xffff)) continue;
    if (!normaliseSuperblock(buf, epochSec)) continue;
    await f.seek(off, Deno.SeekMode.Start);
    await writeFull(f, buf);
    fixed++;
  }
  return fixed;
}

/** sparse_super: backups live in groups 0, 1 and powers of 3, 5 and 7. */
function hasSuperBackup(g: number): boolean {
  if (g <= 1) return true;
  for (const base of [3, 5, 7]) {
    let x = base;
    while (x < g) x *= base;
    if (x === g) return true;
  }
  return false;
}

async function readFull(f: Deno.FsFile, buf: Uint8Array): Promise<number> {
  let n = 0;
  while (n < buf.length) {
    const r = await f.read(buf.subarray(n));
    if (r === null) break;
    n += r;
  }
  return n;
}

async function writeFull(f: Deno.FsFile, buf: Uint8Array): Promise<void> {
  let n = 0;
  while (n < buf.length) n += await f.write(buf.subarray(n));
}

/** Converts a raw image to qcow2 with the reference's options (2 MiB clusters, lazy refcounts). */
export async function toQcow2(rawPath: string, qcowPath: string): Promise<void> {
  await run("qemu-img", [
    "convert",
    "-q",
    "-f",
    "raw",
    "-O",
    "qcow2",
    "-o",
    "cluster_size=2M,lazy_refcounts=on",
    rawPath,
    qcowPath,
  ]);
}
