import assert from "node:assert/strict";
import { z } from "zod";
import { ParseError } from "../lib/errors.ts";
import { formatIssuePath, parseJsonResult, parseOrThrow, parseResult } from "./_parse.ts";

Deno.test("paths are written the Kubernetes way", () => {
  assert.equal(formatIssuePath(["spec", "guest", "cpus", "use"]), "spec.guest.cpus.use");
  assert.equal(formatIssuePath(["spec", "disks", 0, "name"]), "spec.disks[0].name");
  assert.equal(
    formatIssuePath(["metadata", "annotations", "vm.neon.tech/usage"]),
    'metadata.annotations["vm.neon.tech/usage"]',
  );
  assert.equal(formatIssuePath([]), "<root>");
});

Deno.test("parseOrThrow throws ParseError with all paths; parseResult returns it", () => {
  const S = z.object({ a: z.number(), b: z.array(z.string()) });
  assert.deepEqual(parseOrThrow(S, { a: 1, b: ["x"] }, "thing"), { a: 1, b: ["x"] });
  try {
    parseOrThrow(S, { a: "1", b: [1] }, "thing");
    assert.fail("no throw");
  } catch (err) {
    assert.ok(err instanceof ParseError);
    assert.deepEqual(err.paths, ["a", "b[0]"]);
    assert.match(err.message, /^Cannot parse thing: a: .*; b\[0\]: /);
  }
  const r = parseResult(S, null, "thing");
  assert.ok(!r.ok && r.error.paths[0] === "<root>");
  // A throwing refinement is still a typed error, not an escape.
  const T = z.string().refine(() => {
    throw new RangeError("boom");
  });
  const t = parseResult(T, "x", "thing");
  assert.ok(!t.ok && t.error instanceof ParseError && t.error.cause instanceof RangeError);
  const j = parseJsonResult(S, "{not json", "annotation x");
  assert.ok(!j.ok && j.error.message === "Cannot parse annotation x: not JSON");
});
