/** Tests for tool lookup and run errors. */
import assert from "node:assert/strict";
import { MissingToolError, requireTools, run, runCombined, ToolError } from "./exec.ts";

Deno.test("a missing tool is named with its Debian package", () => {
  assert.throws(
    () => requireTools(["sh", "qemu-img-does-not-exist"]),
    (e: unknown) => e instanceof MissingToolError && e.tool === "qemu-img-does-not-exist",
  );
  assert.throws(
    () => requireTools(["debugfs-nope"]),
    /Required tool "debugfs-nope" is not installed/,
  );
});

Deno.test("a failing tool reports the command, exit code and stderr", async () => {
  await assert.rejects(
    run("sh", ["-c", "echo boom >&2; exit 3"]),
    (e: unknown) => e instanceof ToolError && e.code === 3 && /boom/.test(e.message),
  );
  assert.equal(await run("sh", ["-c", "echo ok"]), "ok\n");
});

Deno.test("runCombined interleaves stdout and stderr, returns the code, and can clear the env", async () => {
  Deno.env.set("VMB_EXEC_TEST_HOST", "x");
  try {
    const r = await runCombined("sh", ["-c", "echo 1; echo 2 >&2; echo 3; env; exit 5"], {
      env: { PATH: "/usr/bin:/bin", ONLY: "this" },
      clearEnv: true,
    });
    assert.equal(r.code, 5);
    assert.equal(r.signal, null);
    assert.match(r.output, /^1\n2\n3\n/);
    assert.match(r.output, /ONLY=this/);
    assert.doesNotMatch(r.output, /VMB_EXEC_TEST_HOST/);
  } finally {
    Deno.env.delete("VMB_EXEC_TEST_HOST");
  }
});
