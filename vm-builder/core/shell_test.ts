/** Tests for shell quoting: round-trips through a real shell for arbitrary strings. */
import assert from "node:assert/strict";
import fc from "fast-check";
import { envExports, shellJoin, shellQuote } from "./shell.ts";

Deno.test("shellQuote leaves safe words bare and quotes the rest", () => {
  assert.equal(shellQuote("postgres"), "postgres");
  assert.equal(shellQuote(""), "''");
  assert.equal(shellQuote("it's"), `'it'\\''s'`);
  assert.equal(shellQuote("a b"), "'a b'");
});

Deno.test("envExports skips invalid names and quotes values", () => {
  assert.equal(
    envExports(["A=1", "B=x y", "1X=no", "C"]),
    "export A=1\nexport B='x y'\nexport C=''\n",
  );
});

Deno.test("shellJoin round-trips through /bin/sh", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.string({ unit: "grapheme" }).filter((s) => !s.includes("\0")), { maxLength: 4 }),
      async (words) => {
        const script = `for a in ${shellJoin(words)}; do printf '%s\\0' "$a"; done`;
        const out = await new Deno.Command("/bin/sh", { args: ["-c", script], stdout: "piped" })
          .output();
        const got = new TextDecoder().decode(out.stdout).split("\0").slice(0, -1);
        assert.deepEqual(got, words);
      },
    ),
    { numRuns: 40 },
  );
});
