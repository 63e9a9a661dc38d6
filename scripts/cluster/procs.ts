/**
 * Background processes of the local cluster, tracked by pid files: start detached (own session,
 * output appended to a log file, optionally inside a network namespace), check liveness against
 * the expected binary, stop with SIGTERM then SIGKILL. Must not signal a process it cannot prove
 * is the one it started (pid and binary name must both match).
 * @module
 */
import { exists, run, sha256Hex, sleep, StepError } from "./exec.ts";

/** A background process to start. */
export interface DaemonSpec {
  /** Step name, e.g. `etcd` or `node-0.kubelet`; also the pid file stem. */
  name: string;
  /** Command line; `cmd[0]` must be an absolute path to the binary. */
  cmd: string[];
  /** Log file receiving standard output and error. */
  logFile: string;
  /** Directory for pid files. */
  pidDir: string;
  /** Network namespace (under /run/netns) to run in; only the network namespace is switched. */
  netns?: string;
  /** Config file contents the process reads; a change restarts a running process. */
  configText?: string;
}

/** The pid file of daemon `name`. */
export function pidFile(pidDir: string, name: string): string {
  return `${pidDir}/${name}.pid`;
}

function basename(p: string): string {
  return p.slice(p.lastIndexOf("/") + 1);
}

/** Returns the pid when `pid` is alive, not a zombie, and runs binary `bin`. */
export async function pidRuns(pid: number, bin: string): Promise<boolean> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    if (state === "Z" || state === "X") return false;
    const argv0 = (await Deno.readTextFile(`/proc/${pid}/cmdline`)).split("\0")[0] ?? "";
    return basename(argv0) === basename(bin);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/** Reads the pid of daemon `name`; undefined when there is no pid file. */
export async function readPid(pidDir: string, name: string): Promise<number | undefined> {
  try {
    const n = Number((await Deno.readTextFile(pidFile(pidDir, name))).trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

/** The pid of daemon `name` when it is running as binary `bin`, else undefined. */
export async function runningPid(
  pidDir: string,
  name: string,
  bin: string,
): Promise<number | undefined> {
  const pid = await readPid(pidDir, name);
  return pid !== undefined && await pidRuns(pid, bin) ? pid : undefined;
}

/** Fingerprint of a daemon's command line and config, stored next to its pid file. */
async function fingerprint(spec: DaemonSpec): Promise<string> {
  return await sha256Hex(JSON.stringify([spec.cmd, spec.netns ?? "", spec.configText ?? ""]));
}

/**
 * Starts `spec` detached unless already running with the same command line and config (a
 * changed one is restarted); returns its pid and whether it was started.
 */
export async function startDaemon(spec: DaemonSpec): Promise<{ pid: number; started: boolean }> {
  const bin = spec.cmd[0];
  if (!bin) throw new StepError(spec.name, "empty command");
  const fp = await fingerprint(spec);
  const fpFile = `${pidFile(spec.pidDir, spec.name)}.config`;
  const existing = await runningPid(spec.pidDir, spec.name, bin);
  if (existing !== undefined) {
    const recorded = await Deno.readTextFile(fpFile).catch(() => "");
    if (recorded.trim() === fp) return { pid: existing, started: false };
    await stopDaemon(spec.pidDir, spec.name, bin);
  }
  if (!(await exists(bin))) throw new StepError(spec.name, `binary ${bin} is missing`);
  await Deno.mkdir(spec.pidDir, { recursive: true });
  const pf = pidFile(spec.pidDir, spec.name);
  await Deno.remove(pf).catch(() => {});
  // Keep the previous run's log for post-mortems.
  if (await exists(spec.logFile)) await Deno.rename(spec.logFile, `${spec.logFile}.1`);
  const cmd = spec.netns
    ? ["nsenter", `--net=/run/netns/${spec.netns}`, "--", ...spec.cmd]
    : spec.cmd;
  // setsid -f: new session, parent returns at once. The shell records its own pid, then execs
  // (nsenter execs too), so the recorded pid is the daemon's.
  await run([
    "setsid",
    "-f",
    "sh",
    "-c",
    'echo $$ > "$1"; log="$2"; shift 2; exec "$@" >>"$log" 2>&1 </dev/null',
    "sh",
    pf,
    spec.logFile,
    ...cmd,
  ], { step: spec.name });
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    const pid = await readPid(spec.pidDir, spec.name);
    if (pid !== undefined && await pidRuns(pid, bin)) {
      await Deno.writeTextFile(fpFile, fp + "\n");
      return { pid, started: true };
    }
    await sleep(50);
  }
  throw new StepError(spec.name, `process did not start`, { logFile: spec.logFile });
}

/** Stops daemon `name` (binary `bin`): SIGTERM, then SIGKILL after `graceMs`. */
export async function stopDaemon(
  pidDir: string,
  name: string,
  bin: string,
  graceMs = 10_000,
): Promise<boolean> {
  const pid = await runningPid(pidDir, name, bin);
  let stopped = false;
  if (pid !== undefined) {
    Deno.kill(pid, "SIGTERM");
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline && await pidRuns(pid, bin)) await sleep(100);
    if (await pidRuns(pid, bin)) {
      Deno.kill(pid, "SIGKILL");
      while (await pidRuns(pid, bin)) await sleep(50);
    }
    stopped = true;
  }
  await Deno.remove(pidFile(pidDir, name)).catch(() => {});
  await Deno.remove(`${pidFile(pidDir, name)}.config`).catch(() => {});
  return stopped;
}
