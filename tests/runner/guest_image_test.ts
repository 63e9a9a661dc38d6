/**
 * The packaged test guest image works as the runner pod's init container expects (§5.3): the
 * archive's single layer holds `/disk.qcow2` and a busybox with `sh`, `mv`, `chown`, `sysctl`, and
 * the reference's init command moves the disk into `/vm/images` (run in a chroot; the `sysctl`
 * write is left out so the host is not touched).
 * @module
 */
import assert from "node:assert/strict";
import { testGuest } from "./_harness.ts";

async function run(cmd: string[]): Promise<{ code: number; out: string }> {
  const o = await new Deno.Command(cmd[0]!, {
    args: cmd.slice(1),
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const d = new TextDecoder();
  return { code: o.code, out: d.decode(o.stdout) + d.decode(o.stderr) };
}

Deno.test({
  name: "test-guest image: init container command moves /disk.qcow2 into /vm/images",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    const g = await testGuest();
    const dir = await Deno.makeTempDir({ prefix: "guest-image-test-" });
    try {
      assert.equal((await run(["tar", "-C", dir, "-xf", g.imageArchivePath])).code, 0);
      const manifest = JSON.parse(await Deno.readTextFile(`${dir}/manifest.json`));
      assert.deepEqual(manifest[0].RepoTags, ["localhost/neonvm-ts/test-guest:dev"]);
      assert.equal(manifest[0].Layers.length, 1);
      const root = `${dir}/rootfs`;
      await Deno.mkdir(`${root}/vm/images`, { recursive: true });
      assert.equal(
        (await run(["tar", "-C", root, "-xf", `${dir}/${manifest[0].Layers[0]}`])).code,
        0,
      );
      for (const a of ["sh", "mv", "chown", "sysctl"]) {
        assert.equal(await Deno.readLink(`${root}/bin/${a}`), "busybox", a);
      }
      const r = await run([
        "chroot",
        root,
        "/bin/sh",
        "-c",
        "mv /disk.qcow2 /vm/images/rootdisk.qcow2 && chown 36:34 /vm/images/rootdisk.qcow2",
      ]);
      assert.equal(r.code, 0, r.out);
      const st = await Deno.stat(`${root}/vm/images/rootdisk.qcow2`);
      assert.equal(st.uid, 36);
      assert.equal(st.gid, 34);
      const info = await run([
        "qemu-img",
        "info",
        "--output=json",
        `${root}/vm/images/rootdisk.qcow2`,
      ]);
      assert.equal(JSON.parse(info.out).format, "qcow2");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
