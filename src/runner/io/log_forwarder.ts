/**
 * Copies guest log lines from the virtio-serial port socket (`/vm/log.sock`, port
 * `tech.neon.log.0`) to the runner's stdout (reference §6.7), reconnecting with a jittered
 * backoff from 100 ms to 3 s. Must not block QEMU: it only reads.
 * @module
 */
import type { Clock } from "../../lib/clock.ts";

/** Options of {@linkcode forwardGuestLogs}. */
export interface LogForwarderOptions {
  /** Socket path. */
  readonly socketPath: string;
  /** Where lines go. */
  readonly write: (bytes: Uint8Array) => void;
  /** Clock for backoff sleeps. */
  readonly clock: Clock;
  /** Jitter source in [0, 1). */
  readonly random: () => number;
}

/** Runs until `signal` aborts. */
export async function forwardGuestLogs(
  opts: LogForwarderOptions,
  signal: AbortSignal,
): Promise<void> {
  let backoffMs = 100;
  const buf = new Uint8Array(64 * 1024);
  while (!signal.aborted) {
    let conn: Deno.UnixConn | undefined;
    try {
      conn = await Deno.connect({ transport: "unix", path: opts.socketPath });
      backoffMs = 100;
      const onAbort = () => conn?.close();
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        while (true) {
          const n = await conn.read(buf);
          if (n === null) break;
          opts.write(buf.slice(0, n));
        }
      } finally {
        signal.removeEventListener("abort", onAbort);
      }
    } catch (_disconnected) {
      // Socket not there yet, or QEMU went away: retry after the backoff.
    } finally {
      try {
        conn?.close();
      } catch (_closed) {
        // Closed by the abort handler.
      }
    }
    if (signal.aborted) return;
    const sleepMs = backoffMs * (0.5 + opts.random());
    backoffMs = Math.min(3000, backoffMs * 2);
    await opts.clock.sleep(sleepMs, signal).catch(() => {});
  }
}
