/**
 * Pushes watched configMap/secret disks and the TLS directory into the guest through neonvmd
 * (reference §6.7): retried every 1 s until the first full success, then every 30 s the guest's
 * checksum is compared with the local one and the files are re-pushed on mismatch. Must not
 * write anything locally.
 * @module
 */
import { DAEMON_PATH_FILES } from "../../api/daemon_api.ts";
import { filesChecksum } from "../../api/daemon_api_checksum.ts";
import type { Clock } from "../../lib/clock.ts";
import type { Logger } from "../../lib/log.ts";

/** One directory to keep in sync. */
export interface SyncedDir {
  /** Local atomic-writer directory (`/vm/mounts<path>`). */
  readonly localDir: string;
  /** Path in the guest. */
  readonly guestPath: string;
}

async function readLocal(dir: string): Promise<Record<string, Uint8Array>> {
  const out: Record<string, Uint8Array> = {};
  for await (const e of Deno.readDir(`${dir}/..data`)) {
    const st = await Deno.stat(`${dir}/..data/${e.name}`);
    if (st.isFile) out[e.name] = await Deno.readFile(`${dir}/..data/${e.name}`);
  }
  return out;
}

function toBase64(bytes: Uint8Array): string {
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

/** Keeps `dirs` in sync until `signal` aborts. */
export async function syncFiles(
  dirs: readonly SyncedDir[],
  opts: { baseUrl: string; clock: Clock; logger: Logger },
  signal: AbortSignal,
): Promise<void> {
  if (dirs.length === 0) return;
  let synced = false;
  while (!signal.aborted) {
    let allOk = true;
    for (const d of dirs) {
      const url = `${opts.baseUrl}${DAEMON_PATH_FILES}${d.guestPath}`;
      try {
        const files = await readLocal(d.localDir);
        if (synced) {
          const r = await fetch(url, { signal: AbortSignal.timeout(5000) });
          const remote = (await r.text()).trim();
          if (r.ok && remote === filesChecksum(files)) continue;
        }
        const body: Record<string, { data: string }> = {};
        for (const [n, data] of Object.entries(files)) body[n] = { data: toBase64(data) };
        const r = await fetch(url, {
          method: "PUT",
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(5000),
        });
        await r.body?.cancel();
        if (!r.ok) throw new Error(`neonvm-daemon answered ${r.status}`);
        opts.logger.info("files pushed to guest", { guestPath: d.guestPath });
      } catch (error) {
        allOk = false;
        opts.logger.debug("file sync failed; will retry", { guestPath: d.guestPath, error });
      }
    }
    if (allOk) synced = true;
    await opts.clock.sleep(synced && allOk ? 30_000 : 1_000, signal).catch(() => {});
  }
}
