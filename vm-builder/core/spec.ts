/**
 * The vm-builder spec file (reference §7.2): zod schema with unknown fields rejected, and the
 * parser for the `merge` section. Pure: no I/O; the caller reads the YAML text.
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
  | { readonly kind: "run"; readonly shell: string }
  | { readonly kind: "env"; readonly name: string; readonly value: string };

/**
 * Parses `merge` (Dockerfile instructions) into steps. Supported: `COPY <file>... <dest>` from the
 * spec's `files`, `RUN <shell>` (run as root in the image via chroot) and `ENV`. Why a subset: the
 * reference hands `merge` to Docker; we have no Docker daemon, and these three cover its uses.
 */
export function parseMerge(text: string, fileNames: ReadonlySet<string>): MergeStep[] {
  const steps: MergeStep[] = [];
  // Join continuation lines, drop comments and blanks.
  const logical: { line: string; no: number }[] = [];
  let buf = "";
  let start = 0;
  text.split("\n").forEach((raw, i) => {
    if (buf === "" && (raw.trim() === "" || raw.trim().startsWith("#"))) return;
    if (buf === "") start = i + 1;
    if (raw.endsWith("\\")) buf += raw.slice(0, -1) + "\n";
    else {
      logical.push({ line: buf + raw, no: start });
      buf = "";
    }
  });
  if (buf !== "") logical.push({ line: buf, no: start });
  for (const { line, no } of logical) {
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
      case "RUN":
        if (rest.startsWith("[")) fail("exec-form RUN is not supported; use shell form");
        steps.push({ kind: "run", shell: rest });
        break;
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
