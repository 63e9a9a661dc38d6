/**
 * JSON-lines logger. One object per line: `ts`, `level`, `logger`, `msg`, then fields. The logger
 * is passed in, never a module singleton; cores do not log.
 * @module
 */
import { errorToJson } from "./errors.ts";

/** Log levels in increasing severity. */
export type LogLevel = "debug" | "info" | "warn" | "error";

const LEVEL_ORDER: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** Structured fields attached to a log line. `error` values are serialised with their causes. */
export type LogFields = Readonly<Record<string, unknown>>;

/** A structured logger. */
export interface Logger {
  /** Logs at debug level. */
  debug(msg: string, fields?: LogFields): void;
  /** Logs at info level. */
  info(msg: string, fields?: LogFields): void;
  /** Logs at warn level. */
  warn(msg: string, fields?: LogFields): void;
  /** Logs at error level. */
  error(msg: string, fields?: LogFields): void;
  /** Returns a logger named `<this>.<name>` that adds `fields` to every line. */
  child(name: string, fields?: LogFields): Logger;
}

/** Options for {@linkcode createLogger}. */
export interface LoggerOptions {
  /** Minimum level written; default `info`. */
  level?: LogLevel;
  /** Where lines go; default standard error. */
  write?: (line: string) => void;
  /** Time source for `ts`; default the system clock. */
  now?: () => number;
  /** Fields on every line. */
  fields?: LogFields;
}

const encoder = new TextEncoder();

/** Writes a line to standard error synchronously. */
export function writeStderr(line: string): void {
  Deno.stderr.writeSync(encoder.encode(line + "\n"));
}

/** Creates a JSON-lines logger named `name`. */
export function createLogger(name: string, options: LoggerOptions = {}): Logger {
  const min = LEVEL_ORDER[options.level ?? "info"];
  const write = options.write ?? writeStderr;
  const now = options.now ?? Date.now;
  const base = options.fields ?? {};
  const emit = (level: LogLevel, msg: string, fields?: LogFields) => {
    if (LEVEL_ORDER[level] < min) return;
    const line: Record<string, unknown> = {
      ts: new Date(now()).toISOString(),
      level,
      logger: name,
      msg,
    };
    for (const [k, v] of Object.entries({ ...base, ...fields })) {
      line[k] = v instanceof Error ? errorToJson(v) : v;
    }
    write(JSON.stringify(line, (_k, v) => typeof v === "bigint" ? v.toString() : v));
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (child, fields) =>
      createLogger(`${name}.${child}`, { ...options, fields: { ...base, ...fields } }),
  };
}

/** A logger that records lines in memory, for tests. */
export function memoryLogger(name = "test"): Logger & { lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger(name, {
    level: "debug",
    write: (l) => lines.push(JSON.parse(l)),
  });
  return Object.assign(logger, { lines });
}
