/** Tests for tool lookup and run errors. */
import assert from "node:assert/strict";
import { MissingToolError, requireTools, run, ToolError } from "./exec.ts";

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
