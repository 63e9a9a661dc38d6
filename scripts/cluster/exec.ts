/**
 * Runs host commands for the cluster and image scripts: captured output, optional append to a step
 * log file, and failures that name the step and the log to read. Must not hide a failed command:
 * every non-zero exit either throws a StepError or is returned to a caller that asked for it.
 * @module
 */

/** A cluster or image step failed; carries the step name and the log file with the details. */
export class StepError extends Error {
  /** The step that failed, e.g. `node-1.containerd`. */
  readonly step: string;
  /** The log file holding the failing command's output, when there is one. */
  readonly logFile: string | undefined;
  /** Creates a step error. */
  constructor(step: string, message: string, options: { logFile?: string; cause?: unknown } = {}) {
    super(
      `step ${step} failed: ${message}${options.logFile ? ` (log: ${options.logFile})` : ""}`,
      { cause: options.cause },
    );
    this.name = "StepError";
    this.step = step;
    this.logFile = options.logFile;
  }
}

/** The outcome of a finished command. */
export interface RunResult {
  /** Exit code. */
  code: number;
  /** Standard output as text. */
  stdout: string;
  /** Standard error as text. */
  stderr: string;
}

/** Options for {@linkcode run}. */
export interface RunOptions {
  /** Step name used in the error when the command fails. */
  step: string;
  /** Appends the command line and its output to this file. */
  logFile?: string;
  /** Text written to the command's standard input. */
  stdin?: string | Uint8Array;
  /** Return non-zero exits instead of throwing. */
  allowFail?: boolean;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Working directory. */
  cwd?: string;
  /** Kill the command after this many milliseconds. */
  timeoutMs?: number;
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** Runs a command to completion; throws a StepError on a non-zero exit unless `allowFail`. */
export async function run(cmd: readonly string[], options: RunOptions): Promise<RunResult> {
  const [bin, ...args] = cmd;
  if (bin === undefined) throw new StepError(options.step, "empty command");
  const signal = options.timeoutMs === undefined
    ? undefined
    : AbortSignal.timeout(options.timeoutMs);
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(bin, {
      args,
      stdin: options.stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
      ...(options.env ? { env: options.env } : {}),
      ...(options.cwd ? { cwd: options.cwd } : {}),
      ...(signal ? { signal } : {}),
    }).spawn();
  } catch (err) {
    throw new StepError(options.step, `cannot start ${bin}: ${String(err)}`, { cause: err });
  }
  if (options.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(
      typeof options.stdin === "string" ? encoder.encode(options.stdin) : options.stdin,
    );
    await w.close();
  }
  // Output is collected and, with a log file, appended to it as it arrives (long steps such as
  // debootstrap or the Go builds can be followed with tail -f).
  const log = options.logFile
    ? await Deno.open(options.logFile, { append: true, create: true })
    : undefined;
  let result: RunResult;
  try {
    if (log) await log.write(encoder.encode(`$ ${cmd.join(" ")}\n`));
    const pump = async (stream: ReadableStream<Uint8Array>): Promise<string> => {
      const chunks: Uint8Array[] = [];
      for await (const chunk of stream) {
        chunks.push(chunk);
        if (log) await log.write(chunk);
      }
      let len = 0;
      for (const c of chunks) len += c.length;
      const all = new Uint8Array(len);
      let off = 0;
      for (const c of chunks) {
        all.set(c, off);
        off += c.length;
      }
      return decoder.decode(all);
    };
    const [stdout, stderr, status] = await Promise.all([
      pump(child.stdout),
      pump(child.stderr),
      child.status,
    ]);
    result = { code: status.code, stdout, stderr };
    if (log) await log.write(encoder.encode(`[exit ${status.code}]\n`));
  } finally {
    log?.close();
  }
  if (result.code !== 0 && !options.allowFail) {
    const tail = (result.stderr || result.stdout).trim().split("\n").slice(-5).join(" | ");
    const timedOut = signal?.aborted ? " (timed out)" : "";
    throw new StepError(
      options.step,
      `${cmd.slice(0, 4).join(" ")} exited ${result.code}${timedOut}: ${tail}`,
      options.logFile ? { logFile: options.logFile } : {},
    );
  }
  return result;
}

/** Writes text to standard output synchronously (command results such as `status --json`). */
export function writeStdout(text: string): void {
  Deno.stdout.writeSync(encoder.encode(text));
}

/** Returns true when `path` exists. */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/** Sleeps for `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` every `intervalMs` until it returns true; throws a StepError after `timeoutMs`. */
export async function waitFor(
  step: string,
  what: string,
  check: () => Promise<boolean>,
  options: { timeoutMs: number; intervalMs?: number; logFile?: string },
): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (err) {
      // A failed probe is the same as "not yet"; the last one is reported on timeout.
      lastErr = err;
    }
    await sleep(options.intervalMs ?? 250);
  }
  const why = lastErr === undefined ? "" : ` (last error: ${String(lastErr)})`;
  throw new StepError(
    step,
    `timed out after ${options.timeoutMs} ms waiting for ${what}${why}`,
    options.logFile ? { logFile: options.logFile } : {},
  );
}

/** Hex SHA-256 of bytes or text. */
export async function sha256Hex(data: string | Uint8Array): Promise<string> {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Hex SHA-256 of a file's content, streamed through `sha256sum` so large files stay off-heap. */
export async function sha256File(path: string, step: string): Promise<string> {
  const r = await run(["sha256sum", path], { step });
  const hex = r.stdout.split(/\s+/)[0] ?? "";
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new StepError(step, `bad sha256sum output for ${path}`);
  return hex;
}
