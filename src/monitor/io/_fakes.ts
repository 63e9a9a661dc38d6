/**
 * Test doubles for the monitor's io: a fake cgroup v2 tree in a temporary directory, an in-memory
 * file cache, and a websocket client that queues frames. Only tests and benchmarks import this.
 * @module
 */
import type { FileCache } from "./file_cache.ts";

/** Writes a minimal cgroup v2 tree with one memory cgroup; returns the root. */
export async function fakeCgroupTree(
  name = "neon-postgres",
  anonBytes = 100 << 20,
): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "h6-cgroup-" });
  await Deno.writeTextFile(`${root}/cgroup.controllers`, "cpuset cpu io memory pids\n");
  await Deno.mkdir(`${root}/${name}`, { recursive: true });
  await writeUsage(`${root}/${name}`, anonBytes, anonBytes + (50 << 20));
  await Deno.writeTextFile(`${root}/${name}/memory.high`, "max\n");
  await Deno.writeTextFile(`${root}/${name}/memory.max`, "max\n");
  return root;
}

/** Overwrites memory.stat / memory.current of a fake cgroup directory. */
export async function writeUsage(
  dir: string,
  anonBytes: number,
  currentBytes: number,
): Promise<void> {
  const active = Math.floor(anonBytes * 0.75);
  const stat = [
    `anon ${anonBytes}`,
    `file ${currentBytes - anonBytes}`,
    `kernel 1048576`,
    `shmem 0`,
    `inactive_anon ${anonBytes - active}`,
    `active_anon ${active}`,
    `inactive_file 0`,
    `active_file ${currentBytes - anonBytes}`,
    `unevictable 0`,
  ].join("\n") + "\n";
  // Write to temp files and rename, so a concurrent reader never sees a half-written file.
  await Deno.writeTextFile(`${dir}/.memory.stat.tmp`, stat);
  await Deno.rename(`${dir}/.memory.stat.tmp`, `${dir}/memory.stat`);
  await Deno.writeTextFile(`${dir}/.memory.current.tmp`, `${currentBytes}\n`);
  await Deno.rename(`${dir}/.memory.current.tmp`, `${dir}/memory.current`);
}

/** An in-memory LFC: records sizes, can cap them and can be told to fail. */
export class FakeFileCache implements FileCache {
  /** Sizes set, in order. */
  readonly sets: number[] = [];
  /** Current size in bytes. */
  sizeBytes = 0;
  /** Cap like `neon.max_file_cache_size`, when set. */
  maxBytes: number | undefined;
  /** When set, the next calls reject with this error. */
  failWith: Error | undefined;

  /** Records and returns the (capped, whole-MiB) size. */
  setSizeBytes(bytes: number): Promise<number> {
    if (this.failWith !== undefined) return Promise.reject(this.failWith);
    const capped = this.maxBytes === undefined ? bytes : Math.min(bytes, this.maxBytes);
    this.sizeBytes = Math.floor(capped / 1048576) * 1048576;
    this.sets.push(this.sizeBytes);
    return Promise.resolve(this.sizeBytes);
  }

  /** Returns the current size. */
  getSizeBytes(): Promise<number> {
    return Promise.resolve(this.sizeBytes);
  }
}

/** A websocket client that queues received text frames and close events. */
export class QueueClient {
  /** The socket. */
  readonly ws: WebSocket;
  readonly #frames: string[] = [];
  #waiters: (() => void)[] = [];
  /** Close event details once closed. */
  closed: { code: number; reason: string } | undefined;
  /** Resolves when the socket is closed. */
  readonly closedPromise: Promise<void>;

  /** Connects to `url`. */
  constructor(url: string) {
    this.ws = new WebSocket(url);
    this.ws.onmessage = (ev) => {
      this.#frames.push(typeof ev.data === "string" ? ev.data : "<binary>");
      this.#wake();
    };
    this.closedPromise = new Promise((resolve) => {
      this.ws.onclose = (ev) => {
        this.closed = { code: ev.code, reason: ev.reason };
        this.#wake();
        resolve();
      };
    });
  }

  /** Resolves once open. */
  opened(): Promise<void> {
    if (this.ws.readyState === WebSocket.OPEN) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.ws.onopen = () => resolve();
      this.ws.onerror = () => reject(new Error("websocket failed to open"));
    });
  }

  /** Sends a text or binary frame. */
  send(data: string | Uint8Array): void {
    this.ws.send(data);
  }

  /** The next frame, or an error after `timeoutMs` (a guard against hangs, not a sleep). */
  async next(timeoutMs = 2000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (this.#frames.length === 0) {
      if (this.closed !== undefined) throw new Error(`closed: ${JSON.stringify(this.closed)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no frame within ${timeoutMs} ms`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
    return this.#frames.shift()!;
  }

  /** Close event details, or undefined while open (a method, so narrowing does not stick). */
  closeInfo(): { code: number; reason: string } | undefined {
    return this.closed;
  }

  /** Number of frames received and not yet read. */
  get pending(): number {
    return this.#frames.length;
  }

  /** Closes and waits for the close event. */
  async close(): Promise<void> {
    if (this.closed === undefined) this.ws.close();
    await this.closedPromise;
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }
}
