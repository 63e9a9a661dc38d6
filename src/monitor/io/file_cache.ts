/**
 * Sizes the Postgres local file cache (LFC) by running `psql`: `ALTER SYSTEM SET
 * neon.file_cache_size_limit = <MiB>` then `SELECT pg_reload_conf()`, capped by
 * `neon.max_file_cache_size` when that is set. Must not decide sizes (that is `../core/`).
 *
 * Why psql and not an npm client: no new dependency (DECISIONS D1); psql ships in every Postgres
 * image the monitor runs beside; resizes happen at scaling events (seconds to minutes apart), so a
 * ~10 ms process start does not matter; each call is bounded by a timeout and a failure reaches
 * the agent as `InternalError`, as in the reference.
 *
 * Stock Postgres (no `neon` extension loaded) rejects `ALTER SYSTEM SET` of an unknown `neon.*`
 * parameter ("unrecognized configuration parameter") unless the session already has a placeholder
 * for it. So when `current_setting('neon.file_cache_size_limit', true)` is NULL the script first
 * creates the placeholder with `set_config(…, false)`; with the extension loaded (where the
 * parameter is PGC_SIGHUP and `SET` would fail) that step is skipped.
 * @module
 */
import { MiB } from "../../api/quantity.ts";
import { ParseError, RemoteError, TimeoutError } from "../../lib/errors.ts";

/** The LFC as the monitor sees it; the psql-backed one and test fakes implement it. */
export interface FileCache {
  /** Sets the LFC size (rounded down to whole MiB, capped by the maximum); returns the bytes set. */
  setSizeBytes(bytes: number): Promise<number>;
  /** Reads the current LFC size in bytes (0 when unset). */
  getSizeBytes(): Promise<number>;
}

/** Options for {@linkcode PsqlFileCache}. */
export interface PsqlFileCacheOptions {
  /** libpq connection string or URI (`--pgconnstr`). */
  readonly connstr: string;
  /** psql executable; default `psql`. */
  readonly psqlPath?: string;
  /** Per-call timeout; default 5000 ms. */
  readonly timeoutMs?: number;
}

/** The LFC of a live Postgres, driven through `psql`. */
export class PsqlFileCache implements FileCache {
  readonly #connstr: string;
  readonly #psql: string;
  readonly #timeoutMs: number;

  /** Creates a file cache handle; nothing runs until a method is called. */
  constructor(options: PsqlFileCacheOptions) {
    this.#connstr = options.connstr;
    this.#psql = options.psqlPath ?? "psql";
    this.#timeoutMs = options.timeoutMs ?? 5_000;
  }

  /** Reads `neon.file_cache_size_limit` in bytes (0 when unset). */
  async getSizeBytes(): Promise<number> {
    const out = await this.#run(
      "SELECT coalesce(current_setting('neon.file_cache_size_limit', true), '');\n",
    );
    return parsePgSizeBytes(out.trim()) ?? 0;
  }

  /** Sets the LFC size, capped by `neon.max_file_cache_size` when that is set. */
  async setSizeBytes(bytes: number): Promise<number> {
    const maxOut = await this.#run(
      "SELECT coalesce(current_setting('neon.max_file_cache_size', true), '');\n",
    );
    const maxBytes = parsePgSizeBytes(maxOut.trim());
    const capped = maxBytes === undefined ? bytes : Math.min(bytes, maxBytes);
    const mib = Math.max(0, Math.floor(capped / MiB));
    await this.#run(setScript(mib));
    return mib * MiB;
  }

  async #run(script: string): Promise<string> {
    const signal = AbortSignal.timeout(this.#timeoutMs);
    const cmd = new Deno.Command(this.#psql, {
      args: ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", this.#connstr, "-f", "-"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      signal,
    });
    let child: Deno.ChildProcess;
    try {
      child = cmd.spawn();
    } catch (cause) {
      throw new RemoteError(`Cannot start ${this.#psql}`, { cause });
    }
    const writer = child.stdin.getWriter();
    try {
      await writer.write(new TextEncoder().encode(script));
    } finally {
      await writer.close().catch(() => undefined);
    }
    const out = await child.output();
    if (signal.aborted) {
      throw new TimeoutError(`psql did not finish within ${this.#timeoutMs} ms`);
    }
    if (!out.success) {
      const stderr = new TextDecoder().decode(out.stderr).trim().slice(0, 500);
      throw new RemoteError(`psql failed (exit ${out.code}): ${stderr}`, { status: out.code });
    }
    return new TextDecoder().decode(out.stdout);
  }
}

/** The psql script that sets the LFC size to `mib` MiB and reloads the configuration. */
export function setScript(mib: number): string {
  if (!Number.isSafeInteger(mib) || mib < 0) {
    throw new ParseError(`LFC size must be a non-negative integer of MiB, got ${mib}`);
  }
  return [
    "SELECT (current_setting('neon.file_cache_size_limit', true) IS NULL) AS need_placeholder",
    "\\gset",
    "\\if :need_placeholder",
    `SELECT set_config('neon.file_cache_size_limit', '${mib}', false);`,
    "\\endif",
    `ALTER SYSTEM SET neon.file_cache_size_limit = ${mib};`,
    "SELECT pg_reload_conf();",
    "",
  ].join("\n");
}

const PG_UNITS: Record<string, number> = {
  B: 1,
  kB: 1024,
  MB: MiB,
  GB: 1024 * MiB,
  TB: 1024 * 1024 * MiB,
};

/**
 * Parses a Postgres size setting into bytes: `"256MB"`, `"1GB"`, `"512kB"`, or a bare number,
 * which means MiB (the unit of `neon.*_file_cache_size*`). Empty or malformed → undefined.
 */
export function parsePgSizeBytes(text: string): number | undefined {
  const m = /^(\d+)\s*(B|kB|MB|GB|TB)?$/.exec(text.trim());
  if (m === null) return undefined;
  const n = Number(m[1]);
  return n * (m[2] === undefined ? MiB : PG_UNITS[m[2]]!);
}
