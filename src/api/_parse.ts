/**
 * The one way every component turns outside input into typed values: `parseOrThrow` (throws a
 * `ParseError` naming every offending path) and `parseResult` (the same outcome as a value).
 * Paths are written the Kubernetes way: `spec.guest.cpus.use`, `spec.disks[0].name`.
 * Pure: no I/O; never throws anything but `ParseError`.
 * @module
 */
import type { z } from "zod";
import { ParseError } from "../lib/errors.ts";

/** Outcome of {@linkcode parseResult}: the parsed value or the typed error. */
export type ParseResult<T> = { ok: true; value: T } | { ok: false; error: ParseError };

/** Formats a zod issue path as `a.b[0].c` (root is `<root>`). */
export function formatIssuePath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else {
      const s = String(seg);
      // Keys that are not plain identifiers (annotation names, map keys) are bracketed.
      out += /^[A-Za-z_][A-Za-z0-9_]*$/.test(s)
        ? (out === "" ? s : `.${s}`)
        : `[${JSON.stringify(s)}]`;
    }
  }
  return out === "" ? "<root>" : out;
}

/**
 * Parses `input` with `schema`; on failure returns a `ParseError` whose message reads
 * `Cannot parse <what>: <path>: <issue>; ...` and whose `paths` lists every offending path.
 */
export function parseResult<S extends z.ZodType>(
  schema: S,
  input: unknown,
  what: string,
): ParseResult<z.output<S>> {
  let res: ReturnType<S["safeParse"]>;
  try {
    res = schema.safeParse(input) as ReturnType<S["safeParse"]>;
  } catch (cause) {
    // A refinement or transform threw: still an input problem, still typed.
    return {
      ok: false,
      error: new ParseError(`Cannot parse ${what}: ${String(cause)}`, { cause }),
    };
  }
  if (res.success) return { ok: true, value: res.data as z.output<S> };
  const issues = res.error.issues;
  const paths = [...new Set(issues.map((i) => formatIssuePath(i.path)))];
  const detail = issues.slice(0, 8).map((i) => `${formatIssuePath(i.path)}: ${i.message}`).join(
    "; ",
  );
  const more = issues.length > 8 ? ` (and ${issues.length - 8} more)` : "";
  return {
    ok: false,
    error: new ParseError(`Cannot parse ${what}: ${detail}${more}`, { paths, cause: res.error }),
  };
}

/**
 * Parses `input` with `schema` or throws a `ParseError` naming the offending paths; `what` names
 * the input in the message (e.g. `VirtualMachine "ns/name"`, `annotation vm.neon.tech/usage`).
 */
export function parseOrThrow<S extends z.ZodType>(
  schema: S,
  input: unknown,
  what: string,
): z.output<S> {
  const r = parseResult(schema, input, what);
  if (!r.ok) throw r.error;
  return r.value;
}

/** Parses a JSON text with `schema`; bad JSON is a `ParseError` too (used for annotations). */
export function parseJsonResult<S extends z.ZodType>(
  schema: S,
  text: string,
  what: string,
): ParseResult<z.output<S>> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    return { ok: false, error: new ParseError(`Cannot parse ${what}: not JSON`, { cause }) };
  }
  return parseResult(schema, raw, what);
}
