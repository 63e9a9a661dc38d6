/**
 * Running the external tools the builder needs (skopeo, umoci, mkfs.ext4, qemu-img, ...), with
 * clear errors for a missing tool or a failed run, and progress steps as JSON log lines. Does not
 * decide what to run: callers pass the plan.
 * @module
 */
import type { Logger } from "../../src/lib/log.ts";
import type { RunOutcome } from "../core/spec.ts";

/** A required tool is not installed. */
export class MissingToolError extends Error {
  /** Creates the error naming the tool and the package that provides it. */
  constructor(readonly tool: string, pkg: string) {
    super(`Required tool "${tool}" is not installed (Debian package: ${pkg})`);
    this.name = "MissingToolError";
  }
}

/** A tool ran and failed. */
export class ToolError extends Error {
  /** Creates the error with the command line and the tail of its stderr. */
  constructor(readonly command: string, readonly code: number, stderr: string) {
    super(
      `${command} failed with exit code ${code}: ${
        stderr.trim().split("\n").slice(-8).join(" | ")
      }`,
    );
    this.name = "ToolError";
  }
}

/** Debian packages providing each tool, for error messages. */
export const TOOL_PACKAGES: Readonly<Record<string, string>> = {
  skopeo: "skopeo",
  umoci: "umoci",
  "mkfs.ext4": "e2fsprogs",
  debugfs: "e2fsprogs",
  "qemu-img": "qemu-utils",
  busybox: "busybox-static",
  ldd: "libc-bin",
  ctr: "containerd",
  debootstrap: "debootstrap",
  "dpkg-deb": "dpkg",
  "apt-get": "apt",
  find: "findutils",
  touch: "coreutils",
  chroot: "coreutils",
  genisoimage: "genisoimage",
  "qemu-system-x86_64": "qemu-system-x86",
};

/** Returns the absolute path of `tool` on PATH (or extra sbin dirs), or undefined. */
export function findTool(tool: string): string | undefined {
  const dirs = [...(Deno.env.get("PATH") ?? "").split(":"), "/usr/sbin", "/sbin"];
  for (const d of dirs) {
    if (d === "") continue;
    try {
      const st = Deno.statSync(`${d}/${tool}`);
      if (st.isFile && ((st.mode ?? 0) & 0o111) !== 0) return `${d}/${tool}`;
    } catch {
      // not in this directory; keep looking
    }
  }
  return undefined;
}

/** The path of `cmd` (absolute as given, else found on PATH); throws MissingToolError. */
function toolPath(cmd: string): string {
  const path = cmd.startsWith("/") ? cmd : findTool(cmd);
  if (path === undefined) throw new MissingToolError(cmd, TOOL_PACKAGES[cmd] ?? "unknown");
  return path;
}

/** Throws MissingToolError for the first tool not installed. */
export function requireTools(tools: readonly string[]): void {
  for (const t of tools) toolPath(t);
}

/** Options for {@linkcode run}. */
export interface RunOptions {
  readonly cwd?: string;
  readonly env?: Readonly<Record<string, string>>;
  /** Start from an empty environment instead of adding `env` to the builder's own. */
  readonly clearEnv?: boolean;
  readonly stdin?: Uint8Array;
  readonly signal?: AbortSignal;
}

/** Runs a tool to completion; returns stdout; throws ToolError or MissingToolError. */
export async function run(
  cmd: string,
  args: readonly string[],
  opts: RunOptions = {},
): Promise<string> {
  const child = new Deno.Command(toolPath(cmd), {
    args: [...args],
    cwd: opts.cwd,
    env: opts.env ? { ...opts.env } : undefined,
    clearEnv: opts.clearEnv ?? false,
    stdin: opts.stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
    signal: opts.signal,
  }).spawn();
  if (opts.stdin) {
    const w = child.stdin.getWriter();
    await w.write(opts.stdin);
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  if (out.code !== 0) {
    throw new ToolError(
      [cmd, ...args].join(" "),
      out.code,
      dec.decode(out.stderr) + dec.decode(out.stdout),
    );
  }
  return dec.decode(out.stdout);
}

/**
 * Runs a tool to completion with stderr sent into stdout (through the host's /bin/sh, so the two
 * interleave as written); returns the exit code, signal and output instead of throwing on failure.
 * Throws MissingToolError for a missing tool.
 */
export async function runCombined(
  cmd: string,
  args: readonly string[],
  opts: Omit<RunOptions, "stdin"> = {},
): Promise<RunOutcome> {
  const out = await new Deno.Command("/bin/sh", {
    args: ["-c", 'exec "$@" 2>&1', "sh", toolPath(cmd), ...args],
    cwd: opts.cwd,
    env: opts.env ? { ...opts.env } : undefined,
    clearEnv: opts.clearEnv ?? false,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: opts.signal,
  }).output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    signal: out.signal,
    output: dec.decode(out.stdout) + dec.decode(out.stderr),
  };
}

/** Runs `fn` as a named step, logging `step started` / `step done` (with elapsedMs) or failure. */
export async function step<T>(
  log: Logger,
  name: string,
  fn: () => Promise<T>,
  fields: Record<string, unknown> = {},
): Promise<T> {
  const t0 = performance.now();
  log.info("step started", { step: name, ...fields });
  try {
    const result = await fn();
    log.info("step done", { step: name, elapsedMs: Math.round(performance.now() - t0) });
    return result;
  } catch (err) {
    log.error("step failed", {
      step: name,
      elapsedMs: Math.round(performance.now() - t0),
      error: err,
    });
    throw err;
  }
}
