/**
 * Tests for the merge steps in a real chroot: a throwaway root holding only busybox-static as
 * /bin/sh. Needs root and /bin/busybox (skipped otherwise); touches nothing outside its temp dir.
 */
import assert from "node:assert/strict";
import { parseMerge } from "../core/spec.ts";
import { applyMerge, MergeRunError } from "./rootfs.ts";

const BUSYBOX = "/bin/busybox";
const canChroot = Deno.uid() === 0 && isFile(BUSYBOX);

/** Whether `path` is a regular file. */
function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false; // missing: the tests that need it are skipped
  }
}

/** Runs `fn` with a throwaway root holding busybox as /bin/sh and /bin/env; removes it after. */
async function withBusyboxRoot(fn: (root: string) => Promise<void>): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "vmb-merge-test-" });
  try {
    await Deno.mkdir(`${root}/bin`);
    await Deno.copyFile(BUSYBOX, `${root}/bin/busybox`);
    await Deno.chmod(`${root}/bin/busybox`, 0o755);
    for (const applet of ["sh", "env"]) await Deno.symlink("busybox", `${root}/bin/${applet}`);
    await fn(root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

/** `merge` steps from lines, with no spec files. */
function merge(lines: readonly string[]) {
  return parseMerge(lines.join("\n"), new Set());
}

Deno.test({
  name: "merge RUN in a chroot: continuations join, [ is shell form, exec form runs argv",
  ignore: !canChroot,
  fn: () =>
    withBusyboxRoot(async (root) => {
      const steps = merge([
        "RUN printf '%s' one \\",
        "  two > /joined",
        "RUN [ -d /bin ] && echo yes > /bracket",
        'RUN ["/bin/sh", "-c", "echo $0 > /exec", "argv0"]',
      ]);
      const seen: string[] = [];
      await applyMerge(root, steps, { files: [], onRunOutput: (s) => seen.push(s.command) });
      assert.equal(await Deno.readTextFile(`${root}/joined`), "onetwo");
      assert.equal(await Deno.readTextFile(`${root}/bracket`), "yes\n");
      assert.equal(await Deno.readTextFile(`${root}/exec`), "argv0\n");
      assert.equal(seen.length, 3);
    }),
});

Deno.test({
  name: "a failing merge RUN reports line, exit code and its own output, never the host env",
  ignore: !canChroot,
  fn: () =>
    withBusyboxRoot(async (root) => {
      Deno.env.set("VMB_TEST_HOST_SECRET", "do-not-leak");
      try {
        // The user's report: a continued `RUN env \` printed the host's environment as the error.
        const steps = merge([
          "ENV A=1",
          "RUN export -p > /env",
          "RUN env \\",
          "  FOO=1 sh -c 'export -p; echo broke-here >&2; exit 7'",
        ]);
        await assert.rejects(
          applyMerge(root, steps, { files: [] }),
          (e: unknown) => {
            assert.ok(e instanceof MergeRunError, String(e));
            assert.equal(e.step.line, 3);
            assert.equal(e.outcome.code, 7);
            assert.match(e.message, /^merge RUN at line 3 failed with exit code 7: env {3}FOO=1/);
            assert.match(e.message, /broke-here/);
            assert.match(e.message, /FOO='?1'?/, "the command's own environment is its output");
            assert.doesNotMatch(e.message, /VMB_TEST_HOST_SECRET|do-not-leak/);
            return true;
          },
        );
        const guestEnv = await Deno.readTextFile(`${root}/env`);
        assert.match(guestEnv, /PATH=/);
        assert.doesNotMatch(guestEnv, /VMB_TEST_HOST_SECRET/, "the builder's env stays out");
      } finally {
        Deno.env.delete("VMB_TEST_HOST_SECRET");
      }
    }),
});

Deno.test({
  name: "merge RUN in a chroot sees the image's Env and earlier ENV steps, not later ones",
  ignore: !canChroot,
  fn: () =>
    withBusyboxRoot(async (root) => {
      const steps = merge([
        'RUN echo "$FROM_IMAGE-$PGDATA-$LATER" > /before',
        "ENV PGDATA=/var/lib/pg",
        'RUN echo "$FROM_IMAGE-$PGDATA-$LATER" > /after',
        "ENV LATER=1",
      ]);
      const extra = await applyMerge(root, steps, { files: [], imageEnv: ["FROM_IMAGE=img"] });
      assert.equal(await Deno.readTextFile(`${root}/before`), "img--\n");
      assert.equal(await Deno.readTextFile(`${root}/after`), "img-/var/lib/pg-\n");
      assert.deepEqual(extra, ["PGDATA=/var/lib/pg", "LATER=1"]);
    }),
});
