/**
 * Typed errors shared by every component. Each extends the closest built-in class, sets `name`
 * and carries a `cause`. Pure: no I/O.
 * @module
 */

/** Input from outside (HTTP body, websocket frame, CRD object, config file, flag) failed to parse. */
export class ParseError extends TypeError {
  /** Dotted paths of the offending fields, e.g. `spec.guest.cpus.use`. */
  readonly paths: readonly string[];
  /** Creates a parse error naming the offending paths. */
  constructor(message: string, options: { paths?: readonly string[]; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "ParseError";
    this.paths = options.paths ?? [];
  }
}

/** A configuration value is invalid; the process should exit non-zero. */
export class ConfigError extends Error {
  /** Creates a config error. */
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ConfigError";
  }
}

/** A call to another process (apiserver, QMP, monitor, scheduler) failed. */
export class RemoteError extends Error {
  /** HTTP status or protocol code when there is one. */
  readonly status: number | undefined;
  /** Creates a remote error. */
  constructor(message: string, options: { status?: number; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "RemoteError";
    this.status = options.status;
  }
}

/** An operation exceeded its deadline. */
export class TimeoutError extends Error {
  /** Creates a timeout error. */
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "TimeoutError";
  }
}

/** A state that the code believes impossible was reached; a bug, never an expected outcome. */
export class InvariantError extends Error {
  /** Creates an invariant error. */
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "InvariantError";
  }
}

/** Serialises an error and its cause chain into plain JSON-safe data for logs. */
export function errorToJson(err: unknown, depth = 0): unknown {
  if (!(err instanceof Error)) return typeof err === "string" ? err : String(err);
  const out: Record<string, unknown> = { name: err.name, message: err.message };
  if (err.cause !== undefined && depth < 8) out.cause = errorToJson(err.cause, depth + 1);
  return out;
}

/** Returns the message of an error and every cause, joined with `: `. */
export function errorChainMessage(err: unknown): string {
  const parts: string[] = [];
  let cur: unknown = err;
  for (let i = 0; i < 8 && cur !== undefined; i++) {
    parts.push(cur instanceof Error ? cur.message : String(cur));
    cur = cur instanceof Error ? cur.cause : undefined;
  }
  return parts.join(": ");
}

/** Marks a switch as exhaustive: calling it with a value means a case is missing. */
export function assertNever(value: never, what = "value"): never {
  throw new InvariantError(`Unexpected ${what}: ${JSON.stringify(value)}`);
}
