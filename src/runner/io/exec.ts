/**
 * Runs host tools (qemu-img, mkfs.ext4, genisoimage, ip, iptables) for the runner and turns a
 * failure into an error that names the command and carries its stderr. Must not swallow a
 * non-zero exit.
 * @module
 */
import type { Logger } from "../../lib/log.ts";

/** A tool exited non-zero or could not start. */
export class CommandError extends Error {
  /** Exit code, when it ran. */
  readonly code: number | undefined;
  /** Creates a command error. */
  constructor(message: string, options: { code?: number; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "CommandError";
    this.code = options.code;
  }
}

/** Output of a finished command. */
export interface CommandOutput {
  /** Standard output. */
  readonly stdout: string;
  /** Standard error. */
  readonly stderr: string;
}

const dec = new TextDecoder();

/** Runs `argv`; resolves with its output, rejects with {@linkcode CommandError} on failure. */
export async function runCommand(
  argv: readonly string[],
  options: { logger?: Logger; stdin?: string; env?: Record<string, string> } = {},
): Promise<CommandOutput> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new CommandError("empty command");
  options.logger?.debug("exec", { argv });
  let out: Deno.CommandOutput;
  try {
    const child = new Deno.Command(cmd, {
      args,
      stdin: options.stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
      ...(options.env === undefined ? {} : { env: options.env }),
    }).spawn();
    if (options.stdin !== undefined) {
      const w = child.stdin.getWriter();
      await w.write(new TextEncoder().encode(options.stdin));
      await w.close();
    }
    out = await child.output();
  } catch (error) {
    throw new CommandError(`Cannot run ${argv.join(" ")}`, { cause: error });
  }
  const stdout = dec.decode(out.stdout);
  const stderr = dec.decode(out.stderr);
  if (!out.success) {
    throw new CommandError(
      `${argv.join(" ")} exited with ${out.code}: ${stderr.trim().slice(0, 2000)}`,
      { code: out.code },
    );
  }
  return { stdout, stderr };
}
