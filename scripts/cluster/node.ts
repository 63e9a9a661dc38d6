/**
 * One cluster node on this machine: its network namespace, cgroup root, containerd instance (own
 * root, state and socket), CNI network, imported images and kubelet; and the teardown that kills
 * every pod process in the node's cgroups, removes its containers, mounts and pod namespaces.
 * Must not touch another node's containerd, cgroups or files.
 * @module
 */
import {
  cniConfig,
  containerdCmd,
  containerdConfig,
  kubeletCmd,
  kubeletConfig,
  type SystemReserved,
} from "./configs.ts";
import { exists, run, sleep, StepError, waitFor } from "./exec.ts";
import type { NodeLayout } from "./layout.ts";
import { setupNodeNetwork, teardownNodeNetwork } from "./network.ts";
import { ensureCert, nodeCerts, writeKubeconfig } from "./pki.ts";
import { pidFile, pidRuns, startDaemon, stopDaemon } from "./procs.ts";
import type { Logger } from "../../src/lib/log.ts";
import { ensureImage } from "../images/import.ts";
import type { BuiltImage } from "../images/build.ts";

/** Shared paths a node needs from the control plane. */
export interface NodeContext {
  /** Binary directory. */
  binDir: string;
  /** PKI directory. */
  pki: string;
  /** Log directory. */
  logs: string;
  /** Pid-file directory. */
  pids: string;
  /** Scratch directory on the image cache's file system (for import staging). */
  stagingDir: string;
  /** Resources held back from pods on every node (shrinks allocatable). */
  reserved?: SystemReserved;
  /** Progress logger. */
  log: Logger;
}

/** cgroup v1/v2 mount points on this machine, keyed by mount point. */
export async function cgroupMounts(): Promise<string[]> {
  const info = await Deno.readTextFile("/proc/self/mountinfo");
  const out: string[] = [];
  for (const line of info.split("\n")) {
    const [pre, post] = line.split(" - ");
    const fstype = post?.split(" ")[0];
    if (fstype === "cgroup" || fstype === "cgroup2") {
      const mp = pre?.split(" ")[4];
      if (mp) out.push(mp);
    }
  }
  return out;
}

/** Creates node `n`'s cgroup root in every hierarchy (cpuset gets the root's cpus and mems). */
async function ensureCgroupRoot(n: NodeLayout): Promise<void> {
  for (const mp of await cgroupMounts()) {
    const dir = `${mp}${n.cgroupRoot}`;
    await Deno.mkdir(dir, { recursive: true });
    if (mp.endsWith("/cpuset")) {
      for (const f of ["cpuset.cpus", "cpuset.mems"]) {
        const cur = (await Deno.readTextFile(`${dir}/${f}`)).trim();
        if (cur === "") {
          await Deno.writeTextFile(`${dir}/${f}`, await Deno.readTextFile(`${mp}/${f}`));
        }
      }
    }
  }
}

/** Starts node `n` (idempotent): network, cgroups, containerd, images, kubelet. */
export async function upNode(
  n: NodeLayout,
  ctx: NodeContext,
  images: readonly BuiltImage[],
): Promise<void> {
  const log = ctx.log.child(n.name);
  const logFile = `${ctx.logs}/${n.name}-setup.log`;
  for (const d of [n.dir, `${n.dir}/cni`, `${n.dir}/kubelet`, n.runDir]) {
    await Deno.mkdir(d, { recursive: true });
  }
  for (const spec of nodeCerts(n)) await ensureCert(ctx.pki, spec, logFile);
  await writeKubeconfig(ctx.pki, n.name, `${n.dir}/kubelet.kubeconfig`);

  await setupNodeNetwork(n, logFile);
  await ensureCgroupRoot(n);
  log.info("network and cgroups ready", { ip: n.ip, podCidr: n.podCidr, netns: n.netns });

  const ctrConfig = containerdConfig(n);
  await Deno.writeTextFile(`${n.dir}/containerd.toml`, ctrConfig);
  await Deno.writeTextFile(`${n.dir}/cni/10-nvts.conflist`, cniConfig(n));
  const ctrLog = `${ctx.logs}/${n.name}-containerd.log`;
  const ctr = await startDaemon({
    name: `${n.name}-containerd`,
    cmd: containerdCmd(`${n.dir}/containerd.toml`),
    logFile: ctrLog,
    pidDir: ctx.pids,
    netns: n.netns,
    configText: ctrConfig,
  });
  await waitFor(`${n.name}.containerd`, "containerd socket", async () => {
    if (!(await pidRuns(ctr.pid, "containerd"))) {
      throw new StepError(`${n.name}.containerd`, "containerd exited", { logFile: ctrLog });
    }
    const r = await run(["ctr", "-a", n.containerdSocket, "version"], {
      step: `${n.name}.containerd`,
      allowFail: true,
      timeoutMs: 5000,
    });
    return r.code === 0;
  }, { timeoutMs: 30_000, logFile: ctrLog });
  log.info(ctr.started ? "containerd started" : "containerd running", {
    pid: ctr.pid,
    socket: n.containerdSocket,
  });

  for (const img of images) {
    const started = Date.now();
    const r = await ensureImage(n, img, ctx.stagingDir, `${ctx.logs}/${n.name}-images.log`);
    log.info(r.imported ? "image imported" : "image present", {
      ref: img.ref,
      ...(r.imported
        ? { layersSent: r.layersSent, seconds: Math.round((Date.now() - started) / 100) / 10 }
        : {}),
    });
  }

  const klConfig = kubeletConfig(n, ctx.pki, ctx.reserved);
  await Deno.writeTextFile(`${n.dir}/kubelet.json`, klConfig);
  const kl = await startDaemon({
    name: `${n.name}-kubelet`,
    cmd: kubeletCmd(ctx.binDir, n, `${n.dir}/kubelet.json`, `${n.dir}/kubelet.kubeconfig`),
    logFile: `${ctx.logs}/${n.name}-kubelet.log`,
    pidDir: ctx.pids,
    netns: n.netns,
    configText: klConfig,
  });
  const klLog = `${ctx.logs}/${n.name}-kubelet.log`;
  await waitFor(`${n.name}.kubelet`, "kubelet /healthz", async () => {
    if (!(await pidRuns(kl.pid, "kubelet"))) {
      throw new StepError(`${n.name}.kubelet`, "kubelet exited", { logFile: klLog });
    }
    const r = await run([
      "nsenter",
      `--net=/run/netns/${n.netns}`,
      "--",
      "curl",
      "-s",
      "--max-time",
      "2",
      "http://127.0.0.1:10248/healthz",
    ], { step: `${n.name}.kubelet`, allowFail: true });
    return r.code === 0 && r.stdout.trim() === "ok";
  }, { timeoutMs: 90_000, intervalMs: 500, logFile: klLog });
  log.info(kl.started ? "kubelet started" : "kubelet running", { pid: kl.pid });
}

/** Pids in the cgroup subtree `dir` (recursive). */
async function cgroupPids(dir: string): Promise<number[]> {
  const out: number[] = [];
  const walk = async (d: string) => {
    let text = "";
    try {
      text = await Deno.readTextFile(`${d}/cgroup.procs`);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return;
      throw err;
    }
    for (const l of text.split("\n")) if (l.trim()) out.push(Number(l));
    for await (const e of Deno.readDir(d)) if (e.isDirectory) await walk(`${d}/${e.name}`);
  };
  await walk(dir);
  return out;
}

async function rmCgroupTree(dir: string): Promise<void> {
  if (!(await exists(dir))) return;
  for await (const e of Deno.readDir(dir)) {
    if (e.isDirectory) await rmCgroupTree(`${dir}/${e.name}`);
  }
  await Deno.remove(dir).catch(() => {});
}

async function netnsInode(pid: number): Promise<string | undefined> {
  try {
    return (await Deno.readLink(`/proc/${pid}/ns/net`)).match(/\[(\d+)\]/)?.[1];
  } catch {
    // The process is gone: nothing to record.
    return undefined;
  }
}

/** Mount points under any of `prefixes`, deepest first. */
export async function mountsUnder(prefixes: readonly string[]): Promise<string[]> {
  const info = await Deno.readTextFile("/proc/self/mountinfo");
  const mps = info.split("\n").map((l) => l.split(" ")[4] ?? "").filter((mp) =>
    prefixes.some((p) => mp === p || mp.startsWith(`${p}/`))
  );
  return [...new Set(mps)].sort((a, b) => b.length - a.length);
}

/** Stops node `n` and removes everything it ran; keeps its containerd root (the images). */
export async function downNode(n: NodeLayout, ctx: NodeContext): Promise<void> {
  const log = ctx.log.child(n.name);
  const logFile = `${ctx.logs}/${n.name}-teardown.log`;
  await stopDaemon(ctx.pids, `${n.name}-kubelet`, "kubelet", 10_000);

  // Every pod process lives in this node's cgroups: kill them all, noting their namespaces.
  const podNetns = new Set<string>();
  const pidsRoot = (await cgroupMounts()).find((m) => m.endsWith("/pids")) ?? "/sys/fs/cgroup/pids";
  for (let round = 0; round < 50; round++) {
    const pids = await cgroupPids(`${pidsRoot}${n.cgroupRoot}`);
    if (pids.length === 0) break;
    for (const pid of pids) {
      const ino = await netnsInode(pid);
      if (ino) podNetns.add(ino);
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
    await sleep(100);
  }

  const sock = n.containerdSocket;
  if (await exists(sock)) {
    const ids = await run(["ctr", "-a", sock, "-n", "k8s.io", "containers", "ls", "-q"], {
      step: `${n.name}.teardown`,
      allowFail: true,
      timeoutMs: 10_000,
    });
    for (const id of ids.stdout.split("\n").map((s) => s.trim()).filter(Boolean)) {
      await run(["ctr", "-a", sock, "-n", "k8s.io", "tasks", "rm", "-f", id], {
        step: `${n.name}.teardown`,
        allowFail: true,
        logFile,
        timeoutMs: 10_000,
      });
      await run(["ctr", "-a", sock, "-n", "k8s.io", "containers", "rm", id], {
        step: `${n.name}.teardown`,
        allowFail: true,
        logFile,
        timeoutMs: 10_000,
      });
    }
  }
  await stopDaemon(ctx.pids, `${n.name}-containerd`, "containerd", 10_000);
  await killShims(sock);

  for (const mp of await mountsUnder([n.dir, n.runDir])) {
    const r = await run(["umount", mp], { step: `${n.name}.umount`, allowFail: true, logFile });
    if (r.code !== 0) await run(["umount", "-l", mp], { step: `${n.name}.umount`, logFile });
  }
  // Pod network namespaces created by this node's containerd (matched by namespace inode).
  if (podNetns.size > 0 && await exists("/run/netns")) {
    for await (const e of Deno.readDir("/run/netns")) {
      if (!e.name.startsWith("cni-")) continue;
      const st = await Deno.stat(`/run/netns/${e.name}`).catch(() => undefined);
      if (st && podNetns.has(String(st.ino))) {
        await run(["umount", `/run/netns/${e.name}`], { step: `${n.name}.netns`, allowFail: true });
        await Deno.remove(`/run/netns/${e.name}`).catch(() => {});
      }
    }
  }
  for (const mp of await cgroupMounts()) await rmCgroupTree(`${mp}${n.cgroupRoot}`);
  await teardownNodeNetwork(n, logFile);
  await removeContainerLogLinks(n.dir);
  for (const d of [`${n.dir}/kubelet`, `${n.dir}/cni-ipam`, `${n.dir}/pod-logs`, n.runDir]) {
    await Deno.remove(d, { recursive: true }).catch(() => {});
  }
  await Deno.remove(pidFile(ctx.pids, `${n.name}-kubelet`)).catch(() => {});
  log.info("node stopped", {});
}

/** Kills containerd shims still serving containerd socket `sock`. */
async function killShims(sock: string): Promise<void> {
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const cmdline = await Deno.readTextFile(`/proc/${e.name}/cmdline`).catch(() => "");
    const argv = cmdline.split("\0");
    if (!(argv[0] ?? "").includes("containerd-shim")) continue;
    const i = argv.indexOf("-address");
    if (i >= 0 && argv[i + 1] === sock) {
      try {
        Deno.kill(Number(e.name), "SIGKILL");
      } catch {
        // Already gone.
      }
    }
  }
}

/** Removes kubelet's /var/log/containers symlinks that point into `nodeDir`. */
async function removeContainerLogLinks(nodeDir: string): Promise<void> {
  const dir = "/var/log/containers";
  if (!(await exists(dir))) return;
  for await (const e of Deno.readDir(dir)) {
    if (!e.isSymlink) continue;
    const target = await Deno.readLink(`${dir}/${e.name}`).catch(() => "");
    if (target.startsWith(`${nodeDir}/`)) await Deno.remove(`${dir}/${e.name}`).catch(() => {});
  }
}
