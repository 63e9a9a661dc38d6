/**
 * vm-builder input forms: an OCI layout directory, an OCI archive and a `docker save` tarball (made
 * from the layout with skopeo) all normalise to the same image config and unpack to the same
 * files; a bad path or a non-image tar fails with a message naming it.
 */
import assert from "node:assert/strict";
import { run } from "../../vm-builder/io/exec.ts";
import {
  detectInput,
  fetchToLayout,
  readLayoutRuntime,
  unpackLayout,
} from "../../vm-builder/io/input.ts";
import { writeLayoutFromDir } from "../../vm-builder/io/oci_layout.ts";

Deno.test("input forms: layout, OCI archive and docker save tarball give the same image", async () => {
  const dir = await Deno.makeTempDir({ prefix: "vmb-input-" });
  try {
    await Deno.mkdir(`${dir}/rootfs/bin`, { recursive: true });
    await Deno.mkdir(`${dir}/rootfs/etc`);
    await Deno.copyFile("/usr/bin/busybox", `${dir}/rootfs/bin/busybox`);
    await Deno.writeTextFile(`${dir}/rootfs/etc/hello`, "hi\n");
    await writeLayoutFromDir(`${dir}/rootfs`, `${dir}/layout`, {
      env: ["PATH=/bin", "X=1"],
      entrypoint: ["/bin/busybox"],
      cmd: ["sh"],
      user: "1000:1000",
    }, "v1");
    await run("skopeo", [
      "copy",
      "--quiet",
      `oci:${dir}/layout:v1`,
      `oci-archive:${dir}/img.oci.tar`,
    ]);
    await run("skopeo", [
      "copy",
      "--quiet",
      `oci:${dir}/layout:v1`,
      `docker-archive:${dir}/img.docker.tar:x:v1`,
    ]);

    assert.equal((await detectInput(`${dir}/layout`)).kind, "oci-layout");
    assert.equal((await detectInput(`${dir}/layout:v1`)).kind, "oci-layout");
    assert.equal((await detectInput(`${dir}/img.oci.tar`)).kind, "oci-archive");
    assert.equal((await detectInput(`${dir}/img.docker.tar`)).kind, "docker-archive");
    assert.equal((await detectInput("registry.example/x/y:1")).kind, "registry");

    for (
      const [i, src] of [`${dir}/layout:v1`, `${dir}/img.oci.tar`, `${dir}/img.docker.tar`]
        .entries()
    ) {
      await fetchToLayout(src, `${dir}/n${i}`);
      const { runtime } = await readLayoutRuntime(`${dir}/n${i}`);
      assert.deepEqual(runtime, {
        env: ["PATH=/bin", "X=1"],
        entrypoint: ["/bin/busybox"],
        cmd: ["sh"],
        user: "1000:1000",
        workingDir: "",
      }, src);
      await unpackLayout(`${dir}/n${i}`, `${dir}/r${i}`);
      assert.equal(await Deno.readTextFile(`${dir}/r${i}/etc/hello`), "hi\n", src);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("input errors name the input", async () => {
  const dir = await Deno.makeTempDir({ prefix: "vmb-input-" });
  try {
    await assert.rejects(
      detectInput(`${dir}/missing.tar`),
      /Input image ".*missing\.tar" does not exist/,
    );
    await Deno.mkdir(`${dir}/empty`);
    await assert.rejects(detectInput(`${dir}/empty`), /is a directory but not an OCI layout/);
    await Deno.writeTextFile(`${dir}/notes.txt`, "not a tar");
    await assert.rejects(detectInput(`${dir}/notes.txt`), /is not a tar archive/);
    await assert.rejects(
      detectInput("Bad Ref!"),
      /neither an existing path nor an image reference/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
