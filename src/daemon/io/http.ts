/**
 * neonvmd's HTTP handler (reference §8.1): `GET /cpu` → online CPUs × 1000, `PUT /cpu` with a
 * decimal milli-CPU body → online/offline CPUs, `GET|PUT /files/<path>` → file sync. Bodies are
 * parsed with zod; a bad body is 400 and changes nothing; failures are 500; other methods 404.
 * CPU and file operations are each serialised. Must not reach outside its sysfs root.
 * @module
 */
import {
  DAEMON_PATH_CPU,
  DAEMON_PATH_FILES,
  DaemonFilesSchema,
  DaemonMilliCpuBodySchema,
} from "../../api/daemon_api.ts";
import type { Logger } from "../../lib/log.ts";
import { onlineMilliCpu, setOnlineCpus, SYSFS_CPU_ROOT } from "./sysfs.ts";
import { dataChecksum, writeAtomic } from "./files.ts";

/** Options of {@linkcode createDaemonHandler}. */
export interface DaemonHandlerOptions {
  /** sysfs CPU directory; default `/sys/devices/system/cpu`. */
  sysfsCpuRoot?: string;
  /** Prefix every file path is resolved under (tests); default `/`. */
  filesRoot?: string;
  /** Logger. */
  logger: Logger;
  /** Names new atomic-writer dirs; default a timestamp. */
  stamp?: () => string;
}

/** Serialises async work. */
function mutex(): <T>(fn: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(fn: () => Promise<T>) => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => {});
    return run;
  };
}

const text = (body: string, status = 200) =>
  new Response(body, { status, headers: { "content-type": "text/plain; charset=utf-8" } });

/** Builds the request handler. */
export function createDaemonHandler(
  options: DaemonHandlerOptions,
): (req: Request) => Promise<Response> {
  const root = options.sysfsCpuRoot ?? SYSFS_CPU_ROOT;
  const filesRoot = (options.filesRoot ?? "/").replace(/\/+$/, "");
  const cpuLock = mutex();
  const filesLock = mutex();
  const stamp = options.stamp ?? (() => new Date().toISOString().replace(/[:.]/g, "_"));
  const log = options.logger;

  return async (req) => {
    const url = new URL(req.url);
    try {
      if (url.pathname === DAEMON_PATH_CPU) {
        if (req.method === "GET") {
          return text(String(await cpuLock(() => onlineMilliCpu(root))));
        }
        if (req.method === "PUT") {
          const parsed = DaemonMilliCpuBodySchema.safeParse(await req.text());
          if (!parsed.success) return text("bad body: expected decimal milli-CPU\n", 400);
          const changes = await cpuLock(() => setOnlineCpus(parsed.data, root));
          log.info("CPUs changed", { milliCpu: parsed.data, changes });
          return text("");
        }
        return text("not found\n", 404);
      }
      if (url.pathname.startsWith(DAEMON_PATH_FILES + "/")) {
        const rel = decodeURIComponent(url.pathname.slice(DAEMON_PATH_FILES.length));
        if (rel.split("/").some((seg) => seg === "..")) return text("bad path\n", 400);
        const dir = `${filesRoot}${rel}`.replace(/\/+$/, "");
        if (req.method === "GET") return text(await filesLock(() => dataChecksum(dir)));
        if (req.method === "PUT") {
          let json: unknown;
          try {
            json = await req.json();
          } catch {
            return text("bad body: not JSON\n", 400);
          }
          const parsed = DaemonFilesSchema.safeParse(json);
          if (!parsed.success) return text("bad body: expected {name: {data: base64}}\n", 400);
          const files: Record<string, Uint8Array> = {};
          for (const [name, f] of Object.entries(parsed.data)) {
            files[name] = Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0));
          }
          await filesLock(() => writeAtomic(dir, files, stamp()));
          log.info("files written", { dir, files: Object.keys(files) });
          return text("");
        }
        return text("not found\n", 404);
      }
      return text("not found\n", 404);
    } catch (error) {
      log.error("request failed", { path: url.pathname, method: req.method, error });
      return text(`${error instanceof Error ? error.message : String(error)}\n`, 500);
    }
  };
}
