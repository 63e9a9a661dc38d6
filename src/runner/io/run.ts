/**
 * The runner's startup sequence and lifetime (reference §6.2, §6.5–§6.7): init script, disks and
 * runtime ISO, networking, accelerator detection, QEMU cgroup, HTTP API, log forwarding and file
 * sync, then QEMU in the foreground. SIGTERM/SIGINT press the ACPI power button over QMP and
 * `quit` QEMU if the guest has not stopped within the grace period. The returned exit status says
 * how it ended. Must not decide scaling: the controller does that through QMP and the API.
 * @module
 */
import { RUNNER_ENV_POD_NAME } from "../../api/runner_api.ts";
import type { Clock } from "../../lib/clock.ts";
import { errorChainMessage } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { connectQmp } from "../../lib/qmp/client.ts";
import { quit, systemPowerdown } from "../../lib/qmp/commands.ts";
import { TaskGroup } from "../../lib/task_group.ts";
import type { RunnerConfig } from "../config.ts";
import { type DiskPlan, planDisks } from "../core/disks.ts";
import { localMac, parseResolvConf, planNetwork, type QemuNic } from "../core/network.ts";
import { type RunnerPaths, runnerPaths } from "../core/paths.ts";
import { type Accelerator, buildKernelCmdline, buildQemuArgs } from "../core/qemu_args.ts";
import { createQemuCgroup, type QemuCgroup } from "./cgroup.ts";
import { httpDaemonClient } from "./daemon_client.ts";
import { createDiskImage, growRootDisk, makeRuntimeIso } from "./disks.ts";
import { runCommand } from "./exec.ts";
import { syncFiles } from "./file_sync.ts";
import { createRunnerApi } from "./http_api.ts";
import { forwardGuestLogs } from "./log_forwarder.ts";
import { applyNetworkPlan, type NetworkHandle, networkMetrics } from "./network.ts";

/** How the runner ended; `code` is the process exit status. */
export type RunnerOutcome =
  | { readonly kind: "guest-stopped"; readonly code: 0 }
  | { readonly kind: "clean-shutdown"; readonly code: 0 }
  | { readonly kind: "forced-shutdown"; readonly code: 3 }
  | { readonly kind: "qemu-failed"; readonly code: 1; readonly qemuCode: number };

/** I/O the runner needs from its environment (replaceable in tests). */
export interface RunnerEnv {
  /** Logger. */
  readonly logger: Logger;
  /** Clock. */
  readonly clock: Clock;
  /** Random bytes source. */
  readonly randomBytes: (n: number) => Uint8Array;
  /** Registers a signal handler; returns an unregister function. */
  readonly onSignal: (signal: "SIGTERM" | "SIGINT", fn: () => void) => () => void;
  /** Writes guest log bytes (stdout). */
  readonly writeGuestLog: (bytes: Uint8Array) => void;
  /** Host name of the pod (guest hostname is `vm-<it>`). */
  readonly hostname: string;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether a KVM guest actually runs: boots QEMU with KVM and no disks and waits for the firmware
 * banner on the serial port. Some hosts expose a /dev/kvm whose guests never execute.
 */
export async function probeKvm(qemuBin: string, timeoutMs = 4000): Promise<boolean> {
  const child = new Deno.Command(qemuBin, {
    args: [
      "-accel",
      "kvm",
      "-machine",
      "q35",
      "-nodefaults",
      "-nographic",
      "-display",
      "none",
      "-monitor",
      "none",
      "-m",
      "64",
      "-serial",
      "stdio",
      "-no-reboot",
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.getReader();
  const dec = new TextDecoder();
  let text = "";
  const timer = setTimeout(() => reader.cancel().catch(() => {}), timeoutMs);
  try {
    while (!text.includes("SeaBIOS") && text.length < 65536) {
      const { value, done } = await reader.read();
      if (done) break;
      text += dec.decode(value, { stream: true });
    }
  } catch (_cancelled) {
    // The deadline cancelled the read.
  } finally {
    clearTimeout(timer);
    try {
      child.kill("SIGKILL");
    } catch (_exited) {
      // Already gone.
    }
    await child.status;
  }
  return text.includes("SeaBIOS");
}

/**
 * Picks KVM when allowed, /dev/kvm opens read-write and a probe guest runs under it; else TCG.
 */
export async function detectAccelerator(
  choice: RunnerConfig["accel"],
  enableAcceleration: boolean,
  qemuBin = "qemu-system-x86_64",
): Promise<{ accelerator: Accelerator; reason: string }> {
  if (choice !== "auto") return { accelerator: choice, reason: `-accel=${choice}` };
  if (!enableAcceleration) return { accelerator: "tcg", reason: "spec.enableAcceleration=false" };
  try {
    const st = await Deno.stat("/dev/kvm");
    if (!st.isCharDevice) return { accelerator: "tcg", reason: "/dev/kvm is not a device" };
    const f = await Deno.open("/dev/kvm", { read: true, write: true });
    f.close();
  } catch (error) {
    return { accelerator: "tcg", reason: `/dev/kvm unusable: ${errorChainMessage(error)}` };
  }
  if (!(await probeKvm(qemuBin))) {
    return { accelerator: "tcg", reason: "/dev/kvm opens but a KVM probe guest did not run" };
  }
  return { accelerator: "kvm", reason: "/dev/kvm works" };
}

async function userExists(name: string): Promise<boolean> {
  try {
    const passwd = await Deno.readTextFile("/etc/passwd");
    return passwd.split("\n").some((l) => l.startsWith(`${name}:`));
  } catch {
    return false;
  }
}

/** Runs the VM until QEMU exits; returns the outcome. */
export async function runRunner(cfg: RunnerConfig, env: RunnerEnv): Promise<RunnerOutcome> {
  const log = env.logger;
  const spec = cfg.spec;
  const paths = runnerPaths(cfg.vmDir);
  await Deno.mkdir(paths.imagesDir, { recursive: true });
  log.info("runner starting", {
    pod: cfg.podName,
    cpuScalingMode: cfg.cpuScalingMode,
    cpus: spec.guest.cpus,
    memorySlots: spec.guest.memorySlots,
    memorySlotSize: spec.guest.memorySlotSize,
    receiveMigration: cfg.receiveMigration,
  });

  // 1. initScript, before anything else.
  if (spec.initScript !== undefined && spec.initScript !== "") {
    const f = await Deno.makeTempFile({ prefix: "neonvm-init-", suffix: ".sh" });
    await Deno.writeTextFile(f, spec.initScript);
    try {
      const out = await runCommand(["/bin/sh", f], { logger: log });
      log.info("initScript done", { stdout: out.stdout.slice(0, 4000) });
    } finally {
      await Deno.remove(f);
    }
  }

  // 2. Disks, runtime ISO and root disk size, in parallel.
  const disks = planDisks({
    spec,
    paths,
    diskCacheSettings: cfg.diskCacheSettings,
    sshKeys: spec.enableSSH && await exists(paths.sshDir),
  });
  await Promise.all([
    makeRuntimeIso(disks.runtimeFiles, paths.runtimeIso, log),
    growRootDisk(paths.rootDisk, spec.guest.rootDisk.size, log).then((grown) => {
      if (grown) log.info("root disk grown", { sizeBytes: spec.guest.rootDisk.size });
    }),
    ...disks.tasks.map((t) => createDiskImage(t, log)),
  ]);
  log.info("disks ready", { drives: disks.drives.map((d) => d.id) });

  // 3. Networking.
  let network: NetworkHandle | undefined;
  let nics: readonly QemuNic[] = [];
  if (!cfg.skipNetwork) {
    const resolv = parseResolvConf(await Deno.readTextFile("/etc/resolv.conf").catch(() => ""));
    const plan = planNetwork({
      ports: spec.guest.ports ?? [],
      defaultMac: localMac([...env.randomBytes(5)]),
      podInterface: "eth0",
      nameservers: resolv.nameservers,
      searchDomains: resolv.searchDomains,
      ...(spec.extraNetwork?.enable
        ? {
          overlay: {
            podInterface: spec.extraNetwork.interface,
            mac: localMac([...env.randomBytes(5)]),
          },
        }
        : {}),
    });
    network = await applyNetworkPlan(plan, log);
    nics = plan.nics;
  } else {
    log.warn("pod networking skipped (-skip-network): the guest has no NIC");
  }
  try {
    return await startVm(cfg, env, { paths, disks, nics });
  } finally {
    if (network) await network[Symbol.asyncDispose]();
  }
}

async function startVm(
  cfg: RunnerConfig,
  env: RunnerEnv,
  prep: { paths: RunnerPaths; disks: DiskPlan; nics: readonly QemuNic[] },
): Promise<RunnerOutcome> {
  const log = env.logger;
  const spec = cfg.spec;
  const { paths, disks, nics } = prep;

  // 4. QEMU command line.
  const accel = await detectAccelerator(cfg.accel, spec.enableAcceleration, cfg.qemuBin);
  log.info("accelerator chosen", accel);
  if (cfg.initrdPath === undefined) {
    log.warn("no initramfs: the kernel must have virtio-pci and virtio-blk built in", {
      kernelPath: cfg.kernelPath,
    });
  }
  const extraNet = spec.extraNetwork?.enable && cfg.status.extraNetIP && cfg.status.extraNetMask
    ? { ip: cfg.status.extraNetIP, mask: cfg.status.extraNetMask }
    : undefined;
  const cmdline = buildKernelCmdline({
    spec,
    cpuScalingMode: cfg.cpuScalingMode,
    memhpAutoMovableRatio: cfg.memhpAutoMovableRatio,
    hostname: `vm-${env.hostname}`,
    podName: cfg.podName,
    append: cfg.appendKernelCmdline,
    useVirtioConsole: cfg.useVirtioConsole,
    ...(extraNet ? { extraNet } : {}),
  });
  const qemuArgs = buildQemuArgs({
    spec,
    cpuScalingMode: cfg.cpuScalingMode,
    accelerator: accel.accelerator,
    paths,
    disks,
    nics,
    kernelPath: cfg.kernelPath,
    ...(cfg.initrdPath === undefined ? {} : { initrdPath: cfg.initrdPath }),
    kernelCmdline: cmdline,
    useVirtioConsole: cfg.useVirtioConsole,
    receiveMigration: cfg.receiveMigration,
    vhostNet: await exists("/dev/vhost-net"),
    ...(await userExists("qemu") ? { runAs: "qemu" } : {}),
  });

  // 5. cgroup.
  let cgroup: QemuCgroup | undefined;
  if (!cfg.skipCgroupManagement) {
    cgroup = await createQemuCgroup(cfg.podName, spec.guest.cpus.use, log);
  }

  // 6. HTTP API.
  const api = createRunnerApi({
    mode: cfg.cpuScalingMode,
    // Why: the reference starts from cpus.min and so forces a Scaling round after every start
    // (§11); the controller's spec says cpus.use, which is also what the cgroup gets.
    initialMilliCpu: spec.guest.cpus.use,
    maxMilliCpu: spec.guest.cpus.max,
    daemon: httpDaemonClient(),
    ...(cgroup ? { cgroup } : {}),
    ...(spec.enableNetworkMonitoring ? { metrics: networkMetrics(log.child("netmon")) } : {}),
    logger: log.child("api"),
  });
  const stopHttp = new AbortController();
  const server = Deno.serve({
    hostname: "0.0.0.0",
    port: spec.runnerPort,
    signal: stopHttp.signal,
    onListen: (a) => log.info("runner API listening", { port: a.port }),
  }, (req) => api.handle(req));

  // 7. QEMU.
  await Deno.remove(paths.qmpSigtermSocket).catch(() => {});
  await Deno.remove(paths.logSocket).catch(() => {});
  const prefix: string[] = [];
  if (await exists("/usr/bin/setpriv")) prefix.push("setpriv", "--pdeathsig", "KILL", "--");
  if (cgroup) prefix.push(...cgroup.execPrefix);
  const argv = [...prefix, cfg.qemuBin, ...qemuArgs];
  log.info("starting QEMU", { argv });
  const [bin, ...rest] = argv;
  const qemu = new Deno.Command(bin!, {
    args: rest,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
    env: { [RUNNER_ENV_POD_NAME]: cfg.podName },
  }).spawn();

  const tasks = new TaskGroup();
  tasks.spawn("log-forwarder", (signal) =>
    forwardGuestLogs({
      socketPath: paths.logSocket,
      write: env.writeGuestLog,
      clock: env.clock,
      random: () => env.randomBytes(1)[0]! / 256,
    }, signal));
  const synced = [
    ...(spec.disks ?? []).filter((d) => d.watch && (d.configMap || d.secret)).map((d) => ({
      localDir: `${paths.mountsDir}${d.mountPath}`,
      guestPath: d.mountPath,
    })),
    ...(spec.tls
      ? [{ localDir: `${paths.mountsDir}${spec.tls.mountPath}`, guestPath: spec.tls.mountPath }]
      : []),
  ];
  tasks.spawn("file-sync", (signal) =>
    syncFiles(synced, {
      baseUrl: "http://169.254.254.254:25183",
      clock: env.clock,
      logger: log.child("filesync"),
    }, signal));

  // 8. SIGTERM → ACPI power button; quit after the grace period.
  let shutdown: { forced: boolean } | undefined;
  const qemuExited = qemu.status;
  const onStop = () => {
    if (shutdown) return;
    shutdown = { forced: false };
    const state = shutdown;
    log.info("stop requested: pressing the ACPI power button", {
      graceSeconds: cfg.shutdownGraceSeconds,
    });
    void (async () => {
      try {
        const qmp = await connectQmp({ transport: "unix", path: paths.qmpSigtermSocket });
        try {
          await systemPowerdown(qmp);
        } finally {
          await qmp.close();
        }
      } catch (error) {
        log.warn("cannot send system_powerdown", { error });
      }
      const graceMs = cfg.shutdownGraceSeconds * 1000;
      const stop = new AbortController();
      const exited = await Promise.race([
        qemuExited.then(() => true),
        env.clock.sleep(graceMs, stop.signal).then(() => false, () => true),
      ]);
      stop.abort();
      if (exited) return;
      state.forced = true;
      log.warn("guest did not stop within the grace period: quitting QEMU", { graceMs });
      try {
        const qmp = await connectQmp({ transport: "unix", path: paths.qmpSigtermSocket });
        try {
          await quit(qmp).catch(() => {});
        } finally {
          await qmp.close();
        }
      } catch (error) {
        log.error("cannot quit QEMU; killing it", { error });
        try {
          qemu.kill("SIGKILL");
        } catch (_gone) {
          // Exited meanwhile.
        }
      }
    })();
  };
  const offTerm = env.onSignal("SIGTERM", onStop);
  const offInt = env.onSignal("SIGINT", onStop);

  const status = await qemuExited;
  offTerm();
  offInt();
  tasks.cancel();
  await tasks.wait().catch((error) => log.warn("background task ended with an error", { error }));
  stopHttp.abort();
  await server.finished;

  let outcome: RunnerOutcome;
  const s: { forced: boolean } | undefined = shutdown;
  if (s !== undefined) {
    outcome = s.forced ? { kind: "forced-shutdown", code: 3 } : { kind: "clean-shutdown", code: 0 };
  } else if (status.code === 0) outcome = { kind: "guest-stopped", code: 0 };
  else outcome = { kind: "qemu-failed", code: 1, qemuCode: status.code };
  log.info("QEMU exited", { qemuCode: status.code, signal: status.signal, outcome: outcome.kind });
  return outcome;
}
