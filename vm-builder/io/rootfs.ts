/**
 * Writing into the unpacked image root: path resolution confined to the root (an image's absolute
 * symlinks must never send writes to the host), the guest plan's entries, the `merge` steps,
 * shipped host binaries with their shared libraries, the Deno apps with their cache, and kernel
 * modules. Does not decide what goes in: core/guest.ts does.
 * @module
 */
import { InvariantError } from "../../src/lib/errors.ts";
import type { GuestEntry } from "../core/guest.ts";
import {
  moduleClosure,
  type ModuleDeps,
  parseModulesDep,
  renderModulesDep,
} from "../core/modules.ts";
import {
  mergeRunEnv,
  type MergeStep,
  runFailureMessage,
  type RunOutcome,
  type RunStep,
} from "../core/spec.ts";
import { run, runCombined } from "./exec.ts";

/**
 * Resolves `path` (absolute, guest view) to a host path inside `root`, following symlinks as the
 * guest would (absolute targets restart at `root`). The last component is followed only when
 * `followLast` is set.
 */
export async function resolveInRoot(
  root: string,
  path: string,
  followLast = true,
): Promise<string> {
  let pending = path.split("/").filter((p) => p !== "" && p !== ".");
  const done: string[] = [];
  for (let hops = 0; pending.length > 0;) {
    const part = pending.shift()!;
    if (part === "..") {
      done.pop();
      continue;
    }
    const candidate = `${root}/${[...done, part].join("/")}`;
    let info: Deno.FileInfo | undefined;
    try {
      info = await Deno.lstat(candidate);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    const isLast = pending.length === 0;
    if (info?.isSymlink && (!isLast || followLast)) {
      if (++hops > 40) throw new InvariantError(`Too many symlinks resolving ${path} in ${root}`);
      const target = await Deno.readLink(candidate);
      if (target.startsWith("/")) done.length = 0;
      pending = [...target.split("/").filter((p) => p !== "" && p !== "."), ...pending];
      continue;
    }
    done.push(part);
  }
  return `${root}/${done.join("/")}`;
}

async function removeIfExists(path: string): Promise<void> {
  try {
    await Deno.remove(path, { recursive: true });
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}

/** Creates the parent directories of a guest path inside `root`; returns the host path. */
async function prepare(root: string, guestPath: string): Promise<string> {
  const slash = guestPath.lastIndexOf("/");
  const parentGuest = guestPath.slice(0, slash) || "/";
  const parent = await resolveInRoot(root, parentGuest);
  await Deno.mkdir(parent, { recursive: true });
  return `${parent}/${guestPath.slice(slash + 1)}`;
}

/** Writes the plan's entries into `root` (replacing what was there, never following the last link). */
export async function writeEntries(root: string, entries: readonly GuestEntry[]): Promise<void> {
  for (const e of entries) {
    const host = await prepare(root, e.path);
    switch (e.kind) {
      case "dir": {
        const st = await Deno.lstat(host).catch(() => undefined);
        if (st && !st.isDirectory) await removeIfExists(host);
        await Deno.mkdir(host, { recursive: true });
        await Deno.chmod(host, e.mode);
        break;
      }
      case "file":
        await removeIfExists(host);
        await Deno.writeTextFile(host, e.text, { mode: e.mode });
        await Deno.chmod(host, e.mode);
        break;
      case "symlink":
        await removeIfExists(host);
        await Deno.symlink(e.target, host);
        break;
    }
  }
}

/** Copies a host file into the guest at `guestPath` with `mode`. */
export async function copyIn(
  root: string,
  hostSrc: string,
  guestPath: string,
  mode: number,
): Promise<void> {
  const host = await prepare(root, guestPath);
  await removeIfExists(host);
  await Deno.copyFile(hostSrc, host);
  await Deno.chmod(host, mode);
}

/** A spec file made available to `merge` COPY steps. */
export interface ContextFile {
  readonly filename: string;
  /** Host path of the content (written to the work dir when given inline). */
  readonly hostPath: string;
}

/** A merge RUN step exited non-zero or was killed. */
export class MergeRunError extends Error {
  /** Creates the error naming the step's line and command, its exit code and its output tail. */
  constructor(readonly step: RunStep, readonly outcome: RunOutcome) {
    super(runFailureMessage(step, outcome));
    this.name = "MergeRunError";
  }
}

/** Options for {@linkcode applyMerge}. */
export interface ApplyMergeOptions {
  /** Spec files available to COPY. */
  readonly files: readonly ContextFile[];
  /** Called with each successful RUN and its output (stdout and stderr interleaved). */
  readonly onRunOutput?: (step: RunStep, output: string) => void;
  /** The base image's `NAME=value` environment, which RUNs see (as in a Dockerfile). */
  readonly imageEnv?: readonly string[];
}

/**
 * Applies `merge` steps; returns extra `NAME=value` env entries from ENV steps. A RUN runs its argv
 * in the root via chroot with mergeRunEnv (core/spec.ts) only (the builder's environment used to
 * leak into it); a failing RUN throws MergeRunError.
 */
export async function applyMerge(
  root: string,
  steps: readonly MergeStep[],
  opts: ApplyMergeOptions,
): Promise<string[]> {
  const env: string[] = [];
  const byName = new Map(opts.files.map((f) => [f.filename, f.hostPath]));
  for (const s of steps) {
    switch (s.kind) {
      case "copy":
        for (const src of s.sources) {
          const base = src.slice(src.lastIndexOf("/") + 1);
          const dest = s.dest.endsWith("/") || s.sources.length > 1
            ? `${s.dest.replace(/\/$/, "")}/${base}`
            : s.dest;
          const mode = ((await Deno.stat(byName.get(src)!)).mode ?? 0o644) & 0o7777;
          await copyIn(root, byName.get(src)!, dest.startsWith("/") ? dest : `/${dest}`, mode);
        }
        break;
      case "run": {
        const procDir = `${root}/proc`;
        const hasProc = await Deno.stat(procDir).then((st) => st.isDirectory, () => false);
        if (hasProc) await run("mount", ["-t", "proc", "proc", procDir]);
        let outcome: RunOutcome;
        try {
          outcome = await runCombined("chroot", [root, ...s.argv], {
            env: mergeRunEnv(opts.imageEnv ?? [], env),
            clearEnv: true,
          });
        } finally {
          if (hasProc) await run("umount", [procDir]);
        }
        if (outcome.code !== 0 || outcome.signal !== null) throw new MergeRunError(s, outcome);
        opts.onRunOutput?.(s, outcome.output);
        break;
      }
      case "env":
        env.push(`${s.name}=${s.value}`);
        break;
    }
  }
  return env;
}

/** Shared libraries (soname -> host path) and the loader path of an ELF binary, via ldd. */
export async function elfDeps(
  binary: string,
): Promise<{ libs: Map<string, string>; loader: string }> {
  const out = await run("ldd", [binary]);
  const libs = new Map<string, string>();
  let loader = "";
  for (const line of out.split("\n")) {
    const arrow = /^\s*(\S+)\s+=>\s+(\/\S+)\s+\(/.exec(line);
    if (arrow) {
      libs.set(arrow[1]!, arrow[2]!);
      continue;
    }
    const ld = /^\s*(\/\S*ld-linux\S*)\s+\(/.exec(line);
    if (ld) loader = ld[1]!;
  }
  if (loader === "") throw new InvariantError(`ldd ${binary}: no dynamic loader (static binary?)`);
  return { libs, loader };
}

/** Ships host binaries (name -> host path) under /neonvm/libexec with their libs in /neonvm/lib. */
export async function shipBinaries(
  root: string,
  binaries: ReadonlyMap<string, string>,
): Promise<string> {
  let loaderName = "";
  const libs = new Map<string, string>();
  for (const [name, path] of binaries) {
    const real = await Deno.realPath(path);
    const deps = await elfDeps(real);
    for (const [so, p] of deps.libs) libs.set(so, p);
    loaderName = deps.loader.slice(deps.loader.lastIndexOf("/") + 1);
    libs.set(loaderName, deps.loader);
    await copyIn(root, real, `/neonvm/libexec/${name}`, 0o755);
  }
  for (const [so, p] of [...libs].sort(([a], [b]) => a.localeCompare(b))) {
    await copyIn(root, await Deno.realPath(p), `/neonvm/lib/${so}`, 0o755);
  }
  return loaderName;
}

/** Copies kernel modules for `wanted` (and their deps) into /lib/modules/<ver>; returns load order. */
export async function shipModules(
  root: string,
  moduleDir: string,
  kernelVersion: string,
  wanted: readonly string[],
): Promise<{ names: string[]; missing: string[] }> {
  const deps: ModuleDeps = parseModulesDep(await Deno.readTextFile(`${moduleDir}/modules.dep`));
  const { ordered, builtinOrMissing } = moduleClosure(deps, wanted);
  const base = `/lib/modules/${kernelVersion}`;
  for (const p of ordered) await copyIn(root, `${moduleDir}/${p}`, `${base}/${p}`, 0o644);
  const depHost = await prepare(root, `${base}/modules.dep`);
  await Deno.writeTextFile(depHost, renderModulesDep(deps, ordered));
  const names = ordered.map((p) => p.slice(p.lastIndexOf("/") + 1).replace(/\.ko$/, ""));
  // Load what was asked for (deps come along through modprobe); keep the closure order.
  return {
    names: names.filter((n) => wanted.includes(n.replaceAll("-", "_"))),
    missing: builtinOrMissing,
  };
}

/** Copies a directory tree with `cp -a` (preserves links and modes). */
export async function copyTree(src: string, dest: string): Promise<void> {
  await Deno.mkdir(dest, { recursive: true });
  await run("cp", ["-a", `${src}/.`, dest]);
}
