/** Tests for the spec schema and the merge subset parser. */
import assert from "node:assert/strict";
import { ParseError } from "../../src/lib/errors.ts";
import { parseBuilderSpec, parseMerge } from "./spec.ts";

Deno.test("a full spec parses", () => {
  const s = parseBuilderSpec({
    commands: [{ name: "vm-monitor", user: "root", sysvInitAction: "respawn", shell: "x" }],
    shutdownHook: "pg_ctl stop",
    files: [{ filename: "a.conf", content: "x" }],
    merge: "COPY a.conf /etc/a.conf",
  }, "t.yaml");
  assert.equal(s.commands[0]?.name, "vm-monitor");
  assert.equal(s.files.length, 1);
});

Deno.test("unknown fields are rejected with their path", () => {
  assert.throws(
    () =>
      parseBuilderSpec({
        commands: [{ name: "a", user: "r", sysvInitAction: "once", shell: "x", nice: 1 }],
      }, "t.yaml"),
    (e: unknown) =>
      e instanceof ParseError && e.message.includes("commands.0.nice") &&
      e.paths.includes("commands.0.nice"),
  );
  assert.throws(() => parseBuilderSpec({ bogus: 1 }, "t.yaml"), /unknown field bogus/);
});

Deno.test("bad values name the field", () => {
  assert.throws(
    () =>
      parseBuilderSpec({
        commands: [{ name: "a", user: "r", sysvInitAction: "sometimes", shell: "x" }],
      }, "t.yaml"),
    /commands\.0\.sysvInitAction/,
  );
  assert.throws(() => parseBuilderSpec({ files: [{ filename: "x" }] }, "t.yaml"), /files\.0/);
  assert.throws(() => parseBuilderSpec({ build: "FROM x" }, "t.yaml"), /build/);
});

Deno.test("merge subset: COPY, RUN with continuation, ENV; others rejected", () => {
  const steps = parseMerge(
    '# c\nCOPY a.conf /etc/\nRUN echo a && \\\n  echo b\nENV A="1 2"\n',
    new Set(["a.conf"]),
  );
  assert.deepEqual(steps, [
    { kind: "copy", sources: ["a.conf"], dest: "/etc/" },
    { kind: "run", shell: "echo a && \n  echo b" },
    { kind: "env", name: "A", value: "1 2" },
  ]);
  assert.throws(() => parseMerge("COPY b /x", new Set(["a"])), /COPY source "b"/);
  assert.throws(() => parseMerge("ADD x /y", new Set()), /line 1: instruction ADD/);
});
