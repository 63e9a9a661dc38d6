/**
 * cgroup v2 memory files of the workload cgroup: reads `memory.stat` / `memory.current` for the
 * watcher and writes `memory.high` / `memory.max`. The root is a parameter so tests use a tmp dir.
 * Must not decide anything: the decisions live in `../core/`.
 * @module
 */
import { ParseError, RemoteError } from "../../lib/errors.ts";

/** One reading of the cgroup, before it gets a timestamp. */
export interface CgroupReading {
  /** `active_anon + inactive_anon` from memory.stat. */
  readonly nonReclaimableBytes: number;
  /** memory.current. */
  readonly currentBytes: number;
}

/** What the monitor needs from a workload cgroup; the real one and test fakes implement it. */
export interface WorkloadCgroup {
  /** Path of the cgroup directory, for logs. */
  readonly path: string;
  /** Reads memory.stat and memory.current. */
  read(): Promise<CgroupReading>;
  /** Writes memory.high and memory.max (in the order that never leaves max below high). */
  setLimits(highBytes: number, maxBytes: number): Promise<void>;
}

/** Parses the `key value` lines of a cgroup v2 `memory.stat` file. */
export function parseMemoryStat(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const trimmed = line.trim();
    if (trimmed === "") continue;
    const m = /^([a-z0-9_]+)\s+(\d+)$/.exec(trimmed);
    if (m === null) {
      throw new ParseError(`Cannot parse memory.stat line ${JSON.stringify(trimmed.slice(0, 80))}`);
    }
    out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/** Derives a reading from memory.stat and memory.current contents. */
export function readingFrom(statText: string, currentText: string): CgroupReading {
  const stat = parseMemoryStat(statText);
  const active = stat.get("active_anon");
  const inactive = stat.get("inactive_anon");
  if (active === undefined || inactive === undefined) {
    throw new ParseError("memory.stat has no active_anon / inactive_anon", {
      paths: ["active_anon", "inactive_anon"],
    });
  }
  const current = currentText.trim();
  if (!/^\d+$/.test(current)) {
    throw new ParseError(`memory.current is not a number: ${JSON.stringify(current.slice(0, 40))}`);
  }
  return { nonReclaimableBytes: active + inactive, currentBytes: Number(current) };
}

/** A cgroup v2 directory on a (real or fake) cgroup filesystem. */
export class Cgroup2 implements WorkloadCgroup {
  /** Path of the cgroup directory. */
  readonly path: string;
  #lastMaxBytes: number | undefined;

  /** Wraps the cgroup at `path` (not checked; use {@linkcode openCgroup2}). */
  constructor(path: string) {
    this.path = path;
  }

  /** Reads memory.stat and memory.current. */
  async read(): Promise<CgroupReading> {
    const [stat, current] = await Promise.all([
      Deno.readTextFile(`${this.path}/memory.stat`),
      Deno.readTextFile(`${this.path}/memory.current`),
    ]);
    return readingFrom(stat, current);
  }

  /** Writes memory.high and memory.max: lowering writes high first, raising writes max first. */
  async setLimits(highBytes: number, maxBytes: number): Promise<void> {
    const high = String(Math.floor(highBytes));
    const max = String(Math.floor(maxBytes));
    const raising = this.#lastMaxBytes === undefined || maxBytes >= this.#lastMaxBytes;
    try {
      if (raising) {
        await Deno.writeTextFile(`${this.path}/memory.max`, max);
        await Deno.writeTextFile(`${this.path}/memory.high`, high);
      } else {
        await Deno.writeTextFile(`${this.path}/memory.high`, high);
        await Deno.writeTextFile(`${this.path}/memory.max`, max);
      }
    } catch (cause) {
      throw new RemoteError(`Cannot set memory limits of cgroup "${this.path}"`, { cause });
    }
    this.#lastMaxBytes = maxBytes;
  }
}

/**
 * Opens cgroup `name` under `root` (default `/sys/fs/cgroup`) after checking it is a cgroup v2
 * memory cgroup whose files parse: `root/cgroup.controllers` lists `memory` and the cgroup has
 * memory.stat and memory.current.
 */
export async function openCgroup2(root: string, name: string): Promise<Cgroup2> {
  const clean = name.replace(/^\/+|\/+$/g, "");
  if (clean === "" || clean.split("/").some((p) => p === ".." || p === ".")) {
    throw new ParseError(`Invalid cgroup name ${JSON.stringify(name)}`);
  }
  let controllers: string;
  try {
    controllers = await Deno.readTextFile(`${root}/cgroup.controllers`);
  } catch (cause) {
    throw new RemoteError(
      `Cannot use cgroup "${clean}": ${root} is not a cgroup v2 hierarchy (no cgroup.controllers)`,
      { cause },
    );
  }
  if (!controllers.split(/\s+/).includes("memory")) {
    throw new RemoteError(
      `Cannot use cgroup "${clean}": the memory controller is not available in ${root}`,
    );
  }
  const cg = new Cgroup2(`${root}/${clean}`);
  try {
    await cg.read();
  } catch (cause) {
    throw new RemoteError(`Cannot read memory files of cgroup "${cg.path}"`, { cause });
  }
  return cg;
}

/** Reads MemTotal (bytes) from a `/proc/meminfo`-format file. */
export async function readMemTotalBytes(path = "/proc/meminfo"): Promise<number> {
  const text = await Deno.readTextFile(path);
  const m = /^MemTotal:\s+(\d+)\s*kB$/m.exec(text);
  if (m === null) throw new ParseError(`No "MemTotal: <n> kB" line in ${path}`);
  return Number(m[1]) * 1024;
}
