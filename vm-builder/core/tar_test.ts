/** Tests for the tar encoder: GNU tar must list and extract what we write. */
import assert from "node:assert/strict";
import { encodeTar } from "./tar.ts";

Deno.test("GNU tar reads our archive, long names and symlinks included", async () => {
  const long = "d/" + "x".repeat(150) + ".txt";
  const tarBytes = encodeTar([
    { header: { name: "d", type: "dir", size: 0, mode: 0o755, mtimeSec: 0 } },
    {
      header: { name: "d/a.txt", type: "file", size: 0, mode: 0o644, mtimeSec: 0 },
      data: new TextEncoder().encode("hello"),
    },
    {
      header: { name: long, type: "file", size: 0, mode: 0o600, mtimeSec: 0 },
      data: new Uint8Array(1000),
    },
    {
      header: {
        name: "d/l",
        type: "symlink",
        size: 0,
        mode: 0o777,
        mtimeSec: 0,
        linkName: "a.txt",
      },
    },
  ]);
  assert.equal(tarBytes.length % 512, 0);
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/a.tar`, tarBytes);
    const out = await new Deno.Command("tar", { args: ["-xf", "a.tar"], cwd: dir }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.equal(await Deno.readTextFile(`${dir}/d/a.txt`), "hello");
    assert.equal((await Deno.stat(`${dir}/${long}`)).size, 1000);
    assert.equal(await Deno.readLink(`${dir}/d/l`), "a.txt");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
