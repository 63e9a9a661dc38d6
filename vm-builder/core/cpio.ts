/**
 * cpio "newc" encoding for the small initramfs that loads the virtio block driver before the root
 * disk is mounted. All entries get fixed owner (0:0), mtime and inode numbers so the archive is
 * reproducible. Pure: no I/O.
 * @module
 */

/** One initramfs entry. */
export interface CpioEntry {
  /** Path without a leading slash. */
  readonly name: string;
  readonly type: "file" | "dir" | "symlink";
  readonly mode: number;
  /** File data, or the link target for symlinks. */
  readonly data?: Uint8Array;
}

const enc = new TextEncoder();

function hex8(n: number): string {
  return n.toString(16).padStart(8, "0");
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

/** Encodes entries (in the given order) plus the trailer into a newc archive. */
export function encodeCpio(entries: readonly CpioEntry[], mtimeSec = 0): Uint8Array {
  const parts: Uint8Array[] = [];
  const push = (name: string, mode: number, data: Uint8Array, ino: number, nlink: number) => {
    const nameBytes = enc.encode(name + "\0");
    const header = "070701" + hex8(ino) + hex8(mode) + hex8(0) + hex8(0) + hex8(nlink) +
      hex8(mtimeSec) + hex8(data.length) + hex8(0) + hex8(0) + hex8(0) + hex8(0) +
      hex8(nameBytes.length) + hex8(0);
    parts.push(enc.encode(header), nameBytes, new Uint8Array(pad4(110 + nameBytes.length)));
    parts.push(data, new Uint8Array(pad4(data.length)));
  };
  entries.forEach((e, i) => {
    const typeBits = e.type === "file" ? 0o100000 : e.type === "dir" ? 0o040000 : 0o120000;
    push(
      e.name,
      typeBits | (e.mode & 0o7777),
      e.data ?? new Uint8Array(),
      i + 1,
      e.type === "dir" ? 2 : 1,
    );
  });
  push("TRAILER!!!", 0, new Uint8Array(), 0, 1);
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total + pad4(total));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
