/** Tests for the spec schema and the merge subset parser. */
import assert from "node:assert/strict";
import { ParseError } from "../../src/lib/errors.ts";
import fc from "fast-check";
import {
  mergeRunEnv,
  type MergeStep,
  parseBuilderSpec,
  parseMerge,
  runFailureMessage,
} from "./spec.ts";

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
    {
      kind: "run",
      line: 3,
      command: "echo a &&   echo b",
      argv: ["/bin/sh", "-c", "echo a &&   echo b"],
    },
    { kind: "env", name: "A", value: "1 2" },
  ]);
  assert.throws(() => parseMerge("COPY b /x", new Set(["a"])), /COPY source "b"/);
  assert.throws(() => parseMerge("ADD x /y", new Set()), /line 1: instruction ADD/);
});

/** The single RUN step of `text`, failing the test when there is not exactly one. */
function onlyRun(text: string): Extract<MergeStep, { kind: "run" }> {
  const steps = parseMerge(text, new Set());
  assert.equal(steps.length, 1);
  const s = steps[0]!;
  assert.equal(s.kind, "run");
  return s as Extract<MergeStep, { kind: "run" }>;
}

Deno.test("RUN continuation: backslash-newline is removed as in a Dockerfile", () => {
  // Inside quotes too: the shell must see one line, not a quoted newline.
  assert.equal(onlyRun('RUN echo "a \\\nb" > /x').command, 'echo "a b" > /x');
  assert.equal(onlyRun("RUN printf '%s' a \\\n  b\\\n  c").command, "printf '%s' a   b  c");
  // Whitespace after the backslash, CRLF line ends, and comment or blank lines inside the
  // continuation (Docker drops those) still join.
  const s = onlyRun(
    "\r\n# x\r\nRUN apt-get install -y \\  \r\n# a comment\r\n\r\n  curl \\\r\n  jq\r\n",
  );
  assert.equal(s.command, "apt-get install -y   curl   jq");
  assert.equal(s.line, 3);
  assert.ok(!s.argv.some((a) => a.includes("\n") || a.includes("\r") || a.endsWith("\\")));
  // The next instruction starts on the line after the continuation ends.
  const steps = parseMerge("RUN a \\\n b\nENV X=1\nRUN c", new Set());
  assert.deepEqual(steps.map((st) => st.kind === "run" ? st.line : st.kind), [1, "env", 4]);
});

Deno.test("RUN continuation joins any split of a command back into one line", () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.string({ minLength: 1, maxLength: 12 }).filter((w) =>
          !/[\s\\#]/.test(w) && !w.startsWith("[")
        ),
        { minLength: 1, maxLength: 6 },
      ),
      (words) => {
        const s = onlyRun(`RUN ${words.join(" \\\n")}`);
        assert.equal(s.command, words.join(" "));
        assert.deepEqual(s.argv, ["/bin/sh", "-c", words.join(" ")]);
      },
    ),
  );
});

Deno.test("RUN is exec form only for a JSON array of strings; anything else is shell form", () => {
  assert.deepEqual(onlyRun("RUN [ -f /etc/x ] && echo y").argv, [
    "/bin/sh",
    "-c",
    "[ -f /etc/x ] && echo y",
  ]);
  assert.deepEqual(onlyRun("RUN [[ -n $A ]]").argv, ["/bin/sh", "-c", "[[ -n $A ]]"]);
  assert.deepEqual(onlyRun("RUN [1, 2]").argv, ["/bin/sh", "-c", "[1, 2]"]);
  assert.deepEqual(onlyRun('RUN ["a", 1]').argv, ["/bin/sh", "-c", '["a", 1]']);
  assert.deepEqual(onlyRun('RUN ["/bin/echo", "hi there"]').argv, ["/bin/echo", "hi there"]);
  assert.deepEqual(onlyRun('RUN [ "/bin/sh", \\\n  "-c", "exit 0" ]').argv, [
    "/bin/sh",
    "-c",
    "exit 0",
  ]);
  assert.throws(() => parseMerge("RUN []", new Set()), /line 1: exec-form RUN needs a command/);
  assert.throws(() => parseMerge("RUN", new Set()), /line 1/);
});

Deno.test("a failed RUN names its line, command, exit code and output tail", () => {
  const step = onlyRun("RUN apt-get install -y \\\n  nothing-like-this");
  const output = Array.from({ length: 50 }, (_, i) => `out ${i}`).join("\n") +
    "\nE: Unable to locate package nothing-like-this\n";
  const msg = runFailureMessage(step, { code: 100, signal: null, output });
  assert.match(
    msg,
    /^merge RUN at line 1 failed with exit code 100: apt-get install -y {3}nothing/,
  );
  assert.match(msg, /E: Unable to locate package nothing-like-this/);
  assert.match(msg, /out 49/);
  assert.doesNotMatch(msg, /out 0\n/, "only the tail of the output");
  assert.ok(msg.length < 3000, "bounded");
  assert.match(
    runFailureMessage(step, { code: 137, signal: "SIGKILL", output: "" }),
    /line 1 was killed by signal SIGKILL: .*\(no output\)/s,
  );
  const long = onlyRun(`RUN echo ${"x".repeat(1000)}`);
  assert.ok(runFailureMessage(long, { code: 1, signal: null, output: "" }).length < 400);
});

Deno.test("merge RUN environment: defaults, then the image's Env, then ENV steps so far", () => {
  const env = mergeRunEnv(["PATH=/img/bin", "LANG=C.UTF-8", "BROKEN"], ["LANG=en", "X=a=b"]);
  assert.equal(env.PATH, "/img/bin");
  assert.equal(env.HOME, "/root");
  assert.equal(env.LANG, "en");
  assert.equal(env.X, "a=b");
  assert.equal(env.BROKEN, undefined);
});
