/**
 * Makes an ext4 superblock reproducible: mke2fs 1.47.0 stamps the creation, last-check and
 * last-write times with the wall clock (it has no SOURCE_DATE_EPOCH support), so the builder
 * resets them to the build epoch and recomputes the metadata checksum (crc32c). Pure: operates on
 * a 1024-byte superblock buffer; io/disk.ts finds the superblocks in the image.
 * @module
 */

/** Magic number at offset 0x38. */
export const EXT4_MAGIC = 0xef53;

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** crc32c without the final inversion, as the kernel's `ext4_chksum(~0, ...)` computes it. */
export function crc32cRaw(data: Uint8Array, seed = 0xffffffff): number {
  let c = seed >>> 0;
  for (const b of data) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return c >>> 0;
}

/** Reads the fields the image layout needs. */
export function superInfo(
  sb: Uint8Array,
): { blockSize: number; blocksPerGroup: number; blocks: number; hasCsum: boolean } {
  const v = new DataView(sb.buffer, sb.byteOffset, sb.byteLength);
  const blocksLo = v.getUint32(0x04, true);
  return {
    blockSize: 1024 << v.getUint32(0x18, true),
    blocksPerGroup: v.getUint32(0x20, true),
    blocks: blocksLo,
    hasCsum: (v.getUint32(0x64, true) & 0x400) !== 0, // RO_COMPAT_METADATA_CSUM
  };
}

/**
 * Sets s_mtime, s_wtime, s_lastcheck, s_mkfs_time (and their _hi bytes) to `epochSec` and
 * recomputes the checksum in place. Returns false when `sb` is not an ext4 superblock.
 */
export function normaliseSuperblock(sb: Uint8Array, epochSec: number): boolean {
  const v = new DataView(sb.buffer, sb.byteOffset, sb.byteLength);
  if (v.getUint16(0x38, true) !== EXT4_MAGIC) return false;
  const lo = epochSec >>> 0;
  const hi = Math.floor(epochSec / 2 ** 32) & 0xff;
  for (const off of [0x2c, 0x30, 0x40, 0x108]) v.setUint32(off, lo, true);
  for (const off of [0x274, 0x275, 0x276, 0x277]) v.setUint8(off, hi);
  if (superInfo(sb).hasCsum) v.setUint32(0x3fc, crc32cRaw(sb.subarray(0, 0x3fc)), true);
  return true;
}
