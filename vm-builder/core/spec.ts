/**
 * The vm-builder spec file (reference §7.2): zod schema with unknown fields rejected, and the
 * parser for the `merge` section, with what a failed RUN reports and which environment a RUN
 * gets. Pure: no I/O; the caller reads the YAML text.
 * @module
 */
import { z } from "zod";
import { ParseError } from "../../src/lib/errors.ts";

/** Busybox inittab actions accepted for extra commands. */
export const SYSV_INIT_ACTIONS = [
  "sysinit",
  "wait",
  "once",
  "respawn",
  "askfirst",
  "shutdown",
  "restart",
  "ctrlaltdel",
] as const;

/** One extra inittab entry (`::<action>:su -p <user> -c '<shell>'`). */
export const SpecCommandSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9._-]+$/, "must be a simple name"),
  user: z.string().regex(/^[A-Za-z0-9._-]+$/, "must be a user name or uid"),
  sysvInitAction: z.enum(SYSV_INIT_ACTIONS),
  shell: z.string().min(1),
});

/** A file added to the build context: exactly one of `content` and `hostPath`. */
export const SpecFileSchema = z.strictObject({
  filename: z.string().min(1).refine((f) => !f.split("/").includes(".."), "must not contain '..'"),
  content: z.string().optional(),
  hostPath: z.string().min(1).optional(),
}).refine((f) => (f.content === undefined) !== (f.hostPath === undefined), {
  message: "exactly one of content and hostPath must be set",
});

/** The whole spec file. */
export const BuilderSpecSchema = z.strictObject({
  commands: z.array(SpecCommandSchema).default([]),
  shutdownHook: z.string().optional(),
  build: z.string().optional(),
  merge: z.string().optional(),
  files: z.array(SpecFileSchema).default([]),
});

/** A parsed spec. */
export type BuilderSpec = z.infer<typeof BuilderSpecSchema>;
/** A parsed extra command. */
export type SpecCommand = z.infer<typeof SpecCommandSchema>;

/** Formats zod issues as `path: message` joined with `; `, with the key for unknown fields. */
export function formatIssues(error: z.ZodError): { text: string; paths: string[] } {
  const paths: string[] = [];
  const parts = error.issues.map((issue) => {
    const base = issue.path.map(String);
    if (issue.code === "unrecognized_keys") {
      const keys = (issue as { keys: string[] }).keys;
      for (const k of keys) paths.push([...base, k].join("."));
      return `unknown field ${keys.map((k) => [...base, k].join(".")).join(", ")}`;
    }
    const p = base.join(".") || "(root)";
    paths.push(p);
    return `${p}: ${issue.message}`;
  });
  return { text: parts.join("; "), paths };
}

/** Validates a decoded YAML document as a builder spec; throws ParseError naming bad fields. */
export function parseBuilderSpec(doc: unknown, source: string): BuilderSpec {
  const result = BuilderSpecSchema.safeParse(doc ?? {});
  if (!result.success) {
    const { text, paths } = formatIssues(result.error);
    throw new ParseError(`Invalid vm-builder spec ${source}: ${text}`, { paths });
  }
  if (result.data.build !== undefined && result.data.build.trim() !== "") {
    throw new ParseError(
      `Invalid vm-builder spec ${source}: build: extra Dockerfile stages need a Dockerfile ` +
        `builder, which this builder does not use; prepare the source image instead`,
      { paths: ["build"] },
    );
  }
  return result.data;
}

/** One step of the supported `merge` subset. */
export type MergeStep =
  | { readonly kind: "copy"; readonly sources: readonly string[]; readonly dest: string }
  | {
    readonly kind: "run";
    /** 1-based line of `merge` where the instruction starts. */
    readonly line: number;
    /** The command as written (continuations joined), for logs and errors. */
    readonly command: string;
    /** What runs inside the image: `/bin/sh -c <command>`, or the exec-form array as is. */
    readonly argv: readonly string[];
  }
  | { readonly kind: "env"; readonly name: string; readonly value: string };

/** A RUN step. */
export type RunStep = Extract<MergeStep, { kind: "run" }>;

/** A blank line or a `#` comment line, which Docker skips (also inside a continuation). */
function isSkippable(raw: string): boolean {
  const t = raw.trim();
  return t === "" || t.startsWith("#");
}

/**
 * Splits `merge` text into logical instructions the way a Dockerfile does: a line ending in `\`
 * (optionally followed by blanks) continues on the next line, and the backslash, the blanks after
 * it and the newline are removed, wherever they are (also inside quotes). Comment and blank lines
 * inside a continuation are skipped. Fixes a bug where the newline was kept, so the shell saw two
 * commands (`apt-get install -y \` + `curl` ran `apt-get install -y`, then `curl`).
 */
function logicalLines(text: string): { line: string; no: number }[] {
  const out: { line: string; no: number }[] = [];
  let buf: string | undefined;
  let start = 0;
  text.split("\n").forEach((rawLine, i) => {
    const raw = rawLine.endsWith("\r") ? rawLine.slice(0, -1) : rawLine;
    if (isSkippable(raw)) return;
    if (buf === undefined) {
      buf = "";
      start = i + 1;
    }
    const cont = /\\[ \t]*$/.exec(raw);
    if (cont) buf += raw.slice(0, cont.index);
    else {
      out.push({ line: buf + raw, no: start });
      buf = undefined;
    }
  });
  if (buf !== undefined) out.push({ line: buf, no: start });
  return out;
}

/**
 * The argv of an exec-form RUN (`RUN ["cmd", "arg"]`), or undefined for shell form. As in Docker,
 * only a valid JSON array of strings is exec form; anything else (`RUN [ -f /x ] && y`) is a shell
 * command. Fixes a bug where every command starting with `[` was taken as exec form.
 */
function execForm(rest: string): string[] | undefined {
  if (!rest.startsWith("[") || !rest.endsWith("]")) return undefined;
  let doc: unknown;
  try {
    doc = JSON.parse(rest);
  } catch {
    return undefined; // not JSON: shell form
  }
  const r = z.array(z.string()).safeParse(doc);
  return r.success ? r.data : undefined;
}

/**
 * Parses `merge` (Dockerfile instructions) into steps. Supported: `COPY <file>... <dest>` from the
 * spec's `files`, `RUN` in shell form (`/bin/sh -c`) or exec form (a JSON array of strings), run as
 * root in the image via chroot, and `ENV`. Why a subset: the reference hands `merge` to Docker; we
 * have no Docker daemon, and these three cover its uses.
 */
export function parseMerge(text: string, fileNames: ReadonlySet<string>): MergeStep[] {
  const steps: MergeStep[] = [];
  for (const { line, no } of logicalLines(text)) {
    const m = /^\s*([A-Za-z]+)\s+([\s\S]*)$/.exec(line);
    const fail = (why: string): never => {
      throw new ParseError(`Invalid vm-builder spec: merge line ${no}: ${why}`, {
        paths: ["merge"],
      });
    };
    if (!m) fail(`cannot parse "${line.trim()}"`);
    const op = m![1]!.toUpperCase();
    const rest = m![2]!.trim();
    switch (op) {
      case "RUN": {
        if (rest === "") fail("RUN needs a command");
        const argv = execForm(rest);
        if (argv !== undefined && argv.length === 0) fail("exec-form RUN needs a command");
        if ((argv ?? [rest]).some((a) => a.includes("\0"))) fail("RUN must not contain NUL");
        steps.push({ kind: "run", line: no, command: rest, argv: argv ?? ["/bin/sh", "-c", rest] });
        break;
      }
      case "COPY": {
        const words = rest.split(/\s+/).filter((w) => !w.startsWith("--chown="));
        if (words.some((w) => w.startsWith("--"))) {
          fail("COPY flags other than --chown are not supported");
        }
        if (words.length < 2) fail("COPY needs at least one source and a destination");
        const dest = words[words.length - 1]!;
        const sources = words.slice(0, -1);
        for (const s of sources) {
          if (!fileNames.has(s)) fail(`COPY source "${s}" is not one of the spec's files`);
        }
        steps.push({ kind: "copy", sources, dest });
        break;
      }
      case "ENV": {
        const eq = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(rest);
        const sp = /^([A-Za-z_][A-Za-z0-9_]*)\s+(.*)$/.exec(rest);
        const hit = eq ?? sp;
        if (!hit) fail("ENV must be NAME=value or NAME value");
        let value = hit![2]!;
        if (/^".*"$/.test(value) || /^'.*'$/.test(value)) value = value.slice(1, -1);
        steps.push({ kind: "env", name: hit![1]!, value });
        break;
      }
      default:
        fail(`instruction ${op} is not supported (supported: COPY, RUN, ENV)`);
    }
  }
  return steps;
}

/** How a RUN ended: exit code, the signal that killed it (if any), stdout and stderr interleaved. */
export interface RunOutcome {
  readonly code: number;
  readonly signal: string | null;
  readonly output: string;
}

/** Lines of output kept in a failed RUN's error. */
export const RUN_ERROR_TAIL_LINES = 20;
/** Characters of output kept in a failed RUN's error. */
export const RUN_ERROR_TAIL_CHARS = 2000;
/** Characters of the command kept in a failed RUN's error. */
const RUN_ERROR_COMMAND_CHARS = 200;

/** The last `maxLines` lines of `text`, at most `maxChars` characters, trailing blanks dropped. */
export function outputTail(text: string, maxLines: number, maxChars: number): string {
  const lines = text.replace(/\s+$/, "").split("\n").slice(-maxLines);
  let tail = lines.join("\n");
  if (tail.length > maxChars) tail = "…" + tail.slice(-maxChars);
  return tail;
}

/**
 * The error text for a failed RUN: its line, its command, the exit code (or signal) and the tail of
 * its own output. Fixes a bug where the error showed the last lines of whatever the command printed
 * to stdout after stderr, which for `RUN env \` + `...` was the host's environment.
 */
export function runFailureMessage(step: RunStep, outcome: RunOutcome): string {
  const cmd = step.command.length > RUN_ERROR_COMMAND_CHARS
    ? step.command.slice(0, RUN_ERROR_COMMAND_CHARS) + "…"
    : step.command;
  const how = outcome.signal !== null
    ? `was killed by signal ${outcome.signal}`
    : `failed with exit code ${outcome.code}`;
  const tail = outputTail(outcome.output, RUN_ERROR_TAIL_LINES, RUN_ERROR_TAIL_CHARS);
  const shown = tail === ""
    ? " (no output)"
    : `\n  last output:\n${tail.split("\n").map((l) => `  | ${l}`).join("\n")}`;
  return `merge RUN at line ${step.line} ${how}: ${cmd}${shown}`;
}

/** Environment of a merge RUN: only this, never the builder's own (PATH and HOME as in Docker). */
const MERGE_RUN_ENV: Readonly<Record<string, string>> = {
  PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  HOME: "/root",
};

/**
 * The environment of a merge RUN, as in a Dockerfile: {@linkcode MERGE_RUN_ENV}, then the base
 * image's `Env`, then the merge's ENV steps so far (later entries win); never the builder's own.
 */
export function mergeRunEnv(
  imageEnv: readonly string[],
  mergeEnv: readonly string[],
): Record<string, string> {
  const env: Record<string, string> = { ...MERGE_RUN_ENV };
  for (const entry of [...imageEnv, ...mergeEnv]) {
    const eq = entry.indexOf("=");
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}
