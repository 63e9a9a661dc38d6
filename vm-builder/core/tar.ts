/**
 * Tar (ustar + PAX) header encoding for the archives the builder writes: the image layer holding
 * `/disk.qcow2` and the OCI archive around it. Entries always carry fixed owner, mode and mtime so
 * output is reproducible. Pure: no I/O; the caller streams file data after each header.
 * @module
 */

/** One tar entry header. */
export interface TarHeader {
  /** Path inside the archive, without a leading slash. */
  readonly name: string;
  readonly type: "file" | "dir" | "symlink";
  /** Data size in bytes (0 for dirs and symlinks). */
  readonly size: number;
  readonly mode: number;
  /** Seconds since the epoch. */
  readonly mtimeSec: number;
  readonly linkName?: string;
  readonly uid?: number;
  readonly gid?: number;
}

const BLOCK = 512;
const enc = new TextEncoder();

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, "0") + "\0";
}

function writeStr(buf: Uint8Array, offset: number, width: number, s: string): void {
  const bytes = enc.encode(s);
  buf.set(bytes.subarray(0, width), offset);
}

function rawHeader(
  name: string,
  typeflag: string,
  size: number,
  h: Pick<TarHeader, "mode" | "mtimeSec" | "uid" | "gid">,
  linkName = "",
): Uint8Array {
  const b = new Uint8Array(BLOCK);
  writeStr(b, 0, 100, name);
  writeStr(b, 100, 8, octal(h.mode & 0o7777, 8));
  writeStr(b, 108, 8, octal(h.uid ?? 0, 8));
  writeStr(b, 116, 8, octal(h.gid ?? 0, 8));
  writeStr(b, 124, 12, octal(size, 12));
  writeStr(b, 136, 12, octal(h.mtimeSec, 12));
  b.fill(0x20, 148, 156);
  writeStr(b, 156, 1, typeflag);
  writeStr(b, 157, 100, linkName);
  writeStr(b, 257, 6, "ustar\0");
  writeStr(b, 263, 2, "00");
  let sum = 0;
  for (const x of b) sum += x;
  writeStr(b, 148, 8, sum.toString(8).padStart(6, "0") + "\0 ");
  return b;
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = body.length + 1;
  while (String(len).length + enc.encode(body).length !== len) len++;
  return `${len}${body}`;
}

/** Bytes of padding needed after `size` bytes of entry data. */
export function tarPadding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/** Encodes a header (preceded by a PAX header when a name or size does not fit ustar). */
export function encodeTarHeader(h: TarHeader): Uint8Array {
  const typeflag = h.type === "file" ? "0" : h.type === "dir" ? "5" : "2";
  const name = h.type === "dir" && !h.name.endsWith("/") ? h.name + "/" : h.name;
  const size = h.type === "file" ? h.size : 0;
  const pax: string[] = [];
  if (enc.encode(name).length > 100) pax.push(paxRecord("path", name));
  if (h.linkName !== undefined && enc.encode(h.linkName).length > 100) {
    pax.push(paxRecord("linkpath", h.linkName));
  }
  if (size >= 8 ** 11) pax.push(paxRecord("size", String(size)));
  const main = rawHeader(
    name.slice(0, 100),
    typeflag,
    size >= 8 ** 11 ? 0 : size,
    h,
    (h.linkName ?? "").slice(0, 100),
  );
  if (pax.length === 0) return main;
  const paxData = enc.encode(pax.join(""));
  const paxHead = rawHeader("PaxHeader", "x", paxData.length, h);
  const out = new Uint8Array(BLOCK + paxData.length + tarPadding(paxData.length) + BLOCK);
  out.set(paxHead, 0);
  out.set(paxData, BLOCK);
  out.set(main, BLOCK + paxData.length + tarPadding(paxData.length));
  return out;
}

/** The two zero blocks that end an archive. */
export function tarTrailer(): Uint8Array {
  return new Uint8Array(BLOCK * 2);
}

/** Encodes a whole in-memory archive (small archives: OCI metadata, test fixtures). */
export function encodeTar(
  entries: readonly { header: TarHeader; data?: Uint8Array }[],
): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const e of entries) {
    const data = e.data ?? new Uint8Array();
    parts.push(encodeTarHeader({ ...e.header, size: data.length }));
    parts.push(data, new Uint8Array(tarPadding(data.length)));
  }
  parts.push(tarTrailer());
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
