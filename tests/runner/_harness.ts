/**
 * Test harness for the real-QEMU runner suites and the resize benchmark: builds (or reuses) the
 * test guest, creates a private network namespace with a veth pair whose inner end is `eth0`
 * (as in a pod), starts `src/runner/main.ts` inside it under TCG, and exposes the guest console
 * (runner stdout), QMP over TCP and the runner API from the host side. Everything it creates is
 * removed by `close()`. Must only be used by tests and benchmarks.
 * @module
 */
import { encodeRunnerFlagJson } from "../../src/api/runner_api.ts";
import { buildTestGuest, type TestGuest } from "../../scripts/guest/build_test_guest.ts";
import { GUEST_REPORT_PREFIX } from "../../scripts/guest/guest_files.ts";

const REPO = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");

/** True when this machine can run the suite (root, QEMU, ip, genisoimage, dnsmasq). */
export function canRunRealQemu(): boolean {
  if (Deno.uid() !== 0) return false;
  for (const bin of ["/usr/bin/qemu-system-x86_64", "/usr/bin/genisoimage", "/usr/sbin/dnsmasq"]) {
    try {
      Deno.statSync(bin);
    } catch {
      return false;
    }
  }
  return true;
}

/** What the guest last reported on its console. */
export interface GuestReport {
  /** Online vCPUs. */
  cpusOnline: number;
  /** MemTotal, KiB. */
  memTotalKib: number;
}

/** Options of {@linkcode startRunner}. */
export interface StartRunnerOptions {
  /** VM spec as wire JSON (merged over a small default). */
  spec?: Record<string, unknown>;
  /** Guest part of the spec, merged over the default guest. */
  guest?: Record<string, unknown>;
  /** CPU scaling mode. */
  cpuScalingMode?: "QmpScaling" | "SysfsScaling";
  /** Extra runner flags. */
  extraFlags?: string[];
  /** Files to place under `<vmDir>/mounts` (path → content), e.g. configMap volumes. */
  mounts?: Record<string, string>;
  /** Manage the QEMU cgroup (default false). */
  manageCgroup?: boolean;
  /** Start as a migration target (`RECEIVE_MIGRATION=true`). */
  receiveMigration?: boolean;
}

/** A running runner in its namespace. */
export interface RunnerUnderTest extends AsyncDisposable {
  /** Pod name used. */
  readonly podName: string;
  /** IP of the runner's namespace as seen from the host. */
  readonly podIp: string;
  /** QMP address (TCP). */
  readonly qmp: { transport: "tcp"; hostname: string; port: number };
  /** Base URL of the runner API. */
  readonly apiBase: string;
  /** The guest console so far. */
  console(): string;
  /** The runner's JSON log so far. */
  logs(): string;
  /** Latest guest report, if any. */
  report(): GuestReport | undefined;
  /** Resolves when the console matches `re` (searching from `fromOffset`); returns the match. */
  waitForConsole(re: RegExp, timeoutMs: number, fromOffset?: number): Promise<RegExpExecArray>;
  /** Resolves with the first report satisfying `pred`. */
  waitForReport(pred: (r: GuestReport) => boolean, timeoutMs: number): Promise<GuestReport>;
  /** Sends a signal to the runner process. */
  signal(sig: Deno.Signal): void;
  /** The runner's exit status. */
  readonly exited: Promise<Deno.CommandStatus>;
  /** The QEMU cgroup directory (when managed). */
  readonly cgroupDir: string | undefined;
  /** Stops everything and removes what was created. */
  close(): Promise<void>;
}

async function sh(cmd: string[], allowFail = false): Promise<string> {
  const out = await new Deno.Command(cmd[0]!, {
    args: cmd.slice(1),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  if (!out.success && !allowFail) {
    throw new Error(`${cmd.join(" ")} failed: ${dec.decode(out.stderr)}`);
  }
  return dec.decode(out.stdout);
}

const REPORT_RE = new RegExp(
  `${GUEST_REPORT_PREFIX} cpus_online=(\\d+) cpu_list=\\S+ memtotal_kib=(\\d+)`,
  "g",
);

/** Builds the guest once per process. */
let guestPromise: Promise<TestGuest> | undefined;
export function testGuest(): Promise<TestGuest> {
  guestPromise ??= buildTestGuest();
  return guestPromise;
}

/** Starts a runner with the test guest in a fresh network namespace. */
export async function startRunner(opts: StartRunnerOptions = {}): Promise<RunnerUnderTest> {
  const guest = await testGuest();
  const id = crypto.getRandomValues(new Uint8Array(2));
  const tag = `${id[0]!.toString(16).padStart(2, "0")}${id[1]!.toString(16).padStart(2, "0")}`;
  const ns = `h4run-${tag}`;
  const hostIf = `h4v${tag}`;
  // A /30 in 10.251.0.0/16 (the local cluster uses 10.213.0.0/24).
  const base = 4 * (id[1]! % 64);
  const hostIp = `10.251.${id[0]}.${base + 1}`;
  const podIp = `10.251.${id[0]}.${base + 2}`;
  const podName = `h4test-${tag}`;
  const vmDir = await Deno.makeTempDir({ prefix: "neonvm-runner-test-" });
  const cleanups: (() => Promise<unknown>)[] = [];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {});
    cleanups.length = 0;
  };
  try {
    cleanups.push(() => Deno.remove(vmDir, { recursive: true }));
    await Deno.mkdir(`${vmDir}/images`, { recursive: true });
    await Deno.copyFile(guest.diskPath, `${vmDir}/images/rootdisk.qcow2`);
    for (const [p, content] of Object.entries(opts.mounts ?? {})) {
      const full = `${vmDir}/mounts${p}`;
      await Deno.mkdir(full.replace(/\/[^/]*$/, ""), { recursive: true });
      await Deno.writeTextFile(full, content);
    }
    // The namespace, a veth into it, and per-namespace /etc files (ip netns exec binds them).
    await Deno.mkdir(`/etc/netns/${ns}`, { recursive: true });
    cleanups.push(() => Deno.remove(`/etc/netns/${ns}`, { recursive: true }));
    await Deno.writeTextFile(`/etc/netns/${ns}/hosts`, "127.0.0.1\tlocalhost\n");
    await Deno.writeTextFile(
      `/etc/netns/${ns}/resolv.conf`,
      "nameserver 10.96.0.10\nsearch default.svc.cluster.local\n",
    );
    await sh(["ip", "netns", "add", ns]);
    cleanups.push(() => sh(["ip", "netns", "del", ns], true));
    await sh(["ip", "link", "add", hostIf, "type", "veth", "peer", "name", `${hostIf}p`]);
    cleanups.push(() => sh(["ip", "link", "del", hostIf], true));
    await sh(["ip", "link", "set", `${hostIf}p`, "netns", ns]);
    await sh(["ip", "netns", "exec", ns, "ip", "link", "set", `${hostIf}p`, "name", "eth0"]);
    await sh(["ip", "addr", "add", `${hostIp}/30`, "dev", hostIf]);
    await sh(["ip", "link", "set", hostIf, "up"]);
    await sh(["ip", "netns", "exec", ns, "ip", "addr", "add", `${podIp}/30`, "dev", "eth0"]);
    await sh(["ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "up"]);
    await sh(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"]);
    // Other test namespaces (a migration peer) are reached through the host.
    await sh(["ip", "netns", "exec", ns, "ip", "route", "add", "default", "via", hostIp]);

    const spec = {
      terminationGracePeriodSeconds: 30,
      ...opts.spec,
      guest: {
        cpus: { min: 1, max: 2, use: 1 },
        memorySlotSize: "1Gi",
        memorySlots: { min: 1, max: 3, use: 1 },
        rootDisk: { image: "localhost/neonvm-ts/test-guest:dev" },
        ...opts.guest,
      },
    };
    const flags = [
      "-vmspec",
      await encodeRunnerFlagJson(spec),
      "-vmstatus",
      await encodeRunnerFlagJson({ podName }),
      "-cpu-scaling-mode",
      opts.cpuScalingMode ?? "QmpScaling",
      "-memhp-auto-movable-ratio",
      "301",
      "-kernelpath",
      guest.kernelPath,
      "-initrdpath",
      guest.initrdPath,
      "-vm-dir",
      vmDir,
      "-accel",
      "tcg",
      "-qemu-disk-cache-settings",
      "cache=unsafe",
      "-appendKernelCmdline",
      "neonvm.report_interval=0.1",
      ...(opts.manageCgroup ? [] : ["-skip-cgroup-management"]),
      ...(opts.extraFlags ?? []),
    ];
    // A private mount namespace with the pod's /etc/hosts and resolv.conf bound in, joined to the
    // network namespace; unlike `ip netns exec` this keeps /sys/fs/cgroup mounted.
    const child = new Deno.Command("unshare", {
      args: [
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        `mount --bind /etc/netns/${ns}/hosts /etc/hosts && ` +
        `mount --bind /etc/netns/${ns}/resolv.conf /etc/resolv.conf && ` +
        `exec nsenter --net=/run/netns/${ns} "$@"`,
        "runner-ns",
        Deno.execPath(),
        "run",
        "-A",
        "--cached-only",
        `${REPO}/src/runner/main.ts`,
        ...flags,
      ],
      cwd: REPO,
      env: {
        K8S_POD_NAME: podName,
        ...(opts.receiveMigration ? { RECEIVE_MIGRATION: "true" } : {}),
      },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    cleanups.push(async () => {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already exited.
      }
      await child.status;
    });
    let consoleText = "";
    let logText = "";
    const dec1 = new TextDecoder();
    const dec2 = new TextDecoder();
    const waiters = new Set<() => void>();
    const wake = () => {
      for (const w of [...waiters]) w();
    };
    const readers: ReadableStreamDefaultReader<Uint8Array>[] = [];
    const pump = async (s: ReadableStream<Uint8Array>, onText: (t: string) => void) => {
      const reader = s.getReader();
      readers.push(reader);
      try {
        while (true) {
          const { value, done } = await reader.read();
          if (done) return;
          onText((s === child.stdout ? dec1 : dec2).decode(value, { stream: true }));
          wake();
        }
      } catch {
        // Cancelled by close().
      }
    };
    const pumps = Promise.all([
      pump(child.stdout, (t) => (consoleText += t)),
      pump(child.stderr, (t) => (logText += t)),
    ]);
    cleanups.push(async () => {
      // Give the pipes a moment to drain, then stop reading (a leaked child could hold them).
      await Promise.race([pumps, new Promise((r) => setTimeout(r, 2000))]);
      for (const r of readers) await r.cancel().catch(() => {});
    });
    const exited = child.status;
    exited.then(wake);
    let cgroupDir: string | undefined;
    if (opts.manageCgroup) {
      cgroupDir = `/sys/fs/cgroup/cpu/neonvm-qemu-${podName}`;
      const d = cgroupDir;
      cleanups.push(async () => {
        for (let i = 0; i < 20; i++) {
          try {
            await Deno.remove(d);
            return;
          } catch {
            await new Promise((r) => setTimeout(r, 200));
          }
        }
      });
    }
    const waitUntil = <T>(
      check: () => T | undefined,
      timeoutMs: number,
      what: string,
    ): Promise<T> =>
      new Promise<T>((resolve, reject) => {
        const done = () => {
          const v = check();
          if (v !== undefined) {
            finish();
            resolve(v);
          }
        };
        const timer = setTimeout(() => {
          finish();
          reject(
            new Error(
              `timed out after ${timeoutMs} ms waiting for ${what}\n--- console tail ---\n${
                consoleText.slice(-2000)
              }\n--- runner log tail ---\n${logText.slice(-3000)}`,
            ),
          );
        }, timeoutMs);
        const finish = () => {
          clearTimeout(timer);
          waiters.delete(done);
        };
        waiters.add(done);
        done();
      });
    const report = (): GuestReport | undefined => {
      let last: GuestReport | undefined;
      for (const m of consoleText.matchAll(REPORT_RE)) {
        last = { cpusOnline: Number(m[1]), memTotalKib: Number(m[2]) };
      }
      return last;
    };
    const h: RunnerUnderTest = {
      podName,
      podIp,
      qmp: { transport: "tcp", hostname: podIp, port: 20183 },
      apiBase: `http://${podIp}:25183`,
      console: () => consoleText,
      logs: () => logText,
      report,
      waitForConsole: (re, timeoutMs, from = 0) =>
        waitUntil(() => re.exec(consoleText.slice(from)) ?? undefined, timeoutMs, String(re)),
      waitForReport: (pred, timeoutMs) =>
        waitUntil(
          () => {
            const r = report();
            return r && pred(r) ? r : undefined;
          },
          timeoutMs,
          "guest report",
        ),
      signal: (sig) => {
        // unshare, sh and nsenter all exec, so the child pid is the runner itself.
        try {
          Deno.kill(child.pid, sig);
        } catch (e) {
          if (!(e instanceof Deno.errors.NotFound)) throw e; // already exited
        }
      },
      exited,
      cgroupDir,
      close: cleanup,
      [Symbol.asyncDispose]: cleanup,
    };
    return h;
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/** Polls `fn` until it returns a value other than undefined, or throws after `timeoutMs`. */
export async function poll<T>(
  fn: () => Promise<T | undefined>,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      lastError = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`, { cause: lastError });
}
