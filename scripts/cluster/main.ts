/**
 * `deno task cluster:up [--nodes N] [--node-cpu Q] [--node-memory Q] | cluster:down [--purge] |
 * cluster:status [--json] | cluster:env`: the real local Kubernetes cluster (upstream binaries, one containerd + kubelet per
 * node in its own network namespace). Progress goes to standard error as JSON lines; `status` and
 * `env` print their result on standard output. Composition only: the work is in the other files.
 * @module
 */
import { parseArgs } from "node:util";
import { z } from "zod";
import { createLogger, type Logger } from "../../src/lib/log.ts";
import { errorToJson } from "../../src/lib/errors.ts";
import { buildPause, buildRuntime, type BuiltImage } from "../images/build.ts";
import { adminRequest, CONTROL_PLANE, downControlPlane, upControlPlane } from "./control_plane.ts";
import { exists, run, sleep, StepError, writeStdout } from "./exec.ts";
import {
  APISERVER_URL,
  binDirFor,
  BRIDGE,
  type ClusterState,
  ClusterStateSchema,
  controlPlanePaths,
  DEFAULT_CACHE_DIR,
  DEFAULT_CLUSTER_DIR,
  K8S_VERSION,
  MAX_NODES,
  nodeLayout,
  RUN_DIR,
} from "./layout.ts";
import { existingNodeNetns, setupHostNetwork, teardownHostNetwork } from "./network.ts";
import { downNode, mountsUnder, type NodeContext, upNode } from "./node.ts";
import { controlPlaneCerts, ensureCa, ensureCert, writeKubeconfig } from "./pki.ts";
import { readPid, runningPid, startDaemon, stopDaemon } from "./procs.ts";
import { fakeNodeName, fakeNodeObject, kwokCmd, kwokStages } from "./kwok.ts";
import type { SystemReserved } from "./configs.ts";
import { parseBytes, parseMilliCpu } from "../../src/api/quantity.ts";

const BINARIES = [
  "etcd",
  "kube-apiserver",
  "kube-controller-manager",
  "kube-scheduler",
  "kubelet",
  "kubectl",
];
/** Largest `--fake-nodes` (fake nodes are cheap; this only guards typos). */
const MAX_FAKE_NODES = 1000;
const HOST_TOOLS = [
  "containerd",
  "ctr",
  "runc",
  "ip",
  "iptables",
  "openssl",
  "nsenter",
  "setsid",
  "curl",
  "tar",
  "debootstrap",
];

/** Host settings changed by the cluster, recorded before the first change and restored by down. */
const HostStateSchema = z.object({
  ipForward: z.string(),
  sysctls: z.record(z.string(), z.string()),
});

/** Kernel settings the kubelet rewrites at start (it sets them for its own OOM/panic policy). */
const KUBELET_SYSCTLS = ["vm.overcommit_memory", "kernel.panic", "kernel.panic_on_oops"];

interface Ctx {
  dir: string;
  cacheDir: string;
  repo: string;
  binDir: string;
  log: Logger;
}

async function sysctl(key: string): Promise<string> {
  return (await run(["sysctl", "-n", key], { step: "sysctl" })).stdout.trim();
}

async function preflight(ctx: Ctx, needKwok: boolean): Promise<void> {
  if (Deno.uid() !== 0) throw new StepError("preflight", "cluster:up must run as root");
  for (const t of HOST_TOOLS) {
    const r = await run(["sh", "-c", `command -v ${t}`], { step: "preflight", allowFail: true });
    if (r.code !== 0) {
      throw new StepError("preflight", `${t} is missing; run scripts/install_deps.sh`);
    }
  }
  const missing = [];
  for (const b of needKwok ? [...BINARIES, "kwok"] : BINARIES) {
    if (!(await exists(`${ctx.binDir}/${b}`))) missing.push(b);
  }
  if (missing.length > 0) {
    const logFile = `${controlPlanePaths(ctx.dir).logs}/build-k8s-bins.log`;
    ctx.log.info("building upstream binaries (first run; takes a while)", { missing, logFile });
    await run(["bash", `${ctx.repo}/scripts/build_k8s_bins.sh`], {
      step: "build-k8s-bins",
      logFile,
      env: { NEONVM_CACHE: ctx.cacheDir },
      timeoutMs: 90 * 60_000,
    });
  }
}

async function recordHostState(ctx: Ctx): Promise<void> {
  const f = controlPlanePaths(ctx.dir).hostStateFile;
  if (await exists(f)) return;
  const sysctls: Record<string, string> = {};
  for (const k of KUBELET_SYSCTLS) sysctls[k] = await sysctl(k);
  const state = { ipForward: await sysctl("net.ipv4.ip_forward"), sysctls };
  await Deno.writeTextFile(f, JSON.stringify(state, null, 2) + "\n");
}

interface NodeStatus {
  name: string;
  ready: boolean;
  podCidr: string | undefined;
}

const NodeListSchema = z.object({
  items: z.array(z.object({
    metadata: z.object({ name: z.string() }),
    spec: z.object({ podCIDR: z.string().optional() }).optional(),
    status: z.object({
      conditions: z.array(z.object({ type: z.string(), status: z.string() })).optional(),
    }).optional(),
  })),
});

async function nodeStatuses(dir: string): Promise<NodeStatus[]> {
  const r = await adminRequest(dir, "/api/v1/nodes");
  if (r.status !== 200) {
    throw new Error(`GET /api/v1/nodes: HTTP ${r.status}: ${r.body.slice(0, 200)}`);
  }
  const list = NodeListSchema.parse(JSON.parse(r.body));
  return list.items.map((n) => ({
    name: n.metadata.name,
    ready: n.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false,
    podCidr: n.spec?.podCIDR,
  }));
}

/** Indices of nodes that have any trace on this machine (namespace, pid file or state). */
async function nodeIndicesPresent(dir: string): Promise<number[]> {
  const found = new Set<number>();
  for (const ns of await existingNodeNetns()) found.add(Number(ns.replace("nvts-node-", "")));
  const pids = controlPlanePaths(dir).pids;
  if (await exists(pids)) {
    for await (const e of Deno.readDir(pids)) {
      const m = e.name.match(/^node-(\d+)-/);
      if (m) found.add(Number(m[1]));
    }
  }
  const nodesDir = `${dir}/nodes`;
  if (await exists(nodesDir)) {
    for await (const e of Deno.readDir(nodesDir)) {
      const m = e.name.match(/^node-(\d+)$/);
      if (m && await exists(`${RUN_DIR}/${e.name}`)) found.add(Number(m[1]));
    }
  }
  return [...found].filter((i) => i < MAX_NODES).sort((a, b) => a - b);
}

/** What `up` was asked for (after defaults from the running cluster). */
interface UpOptions {
  nodeCount: number;
  /** KWOK fake nodes to run (0 = none) and their size. */
  fakeNodes: { count: number; cpu: string; memory: string };
  /** Allocatable CPU per node (quantity), or undefined for the whole machine. */
  nodeCpu: string | undefined;
  /** Allocatable memory per node (quantity), or undefined for the whole machine. */
  nodeMemory: string | undefined;
}

/** Resources to reserve so that each node's allocatable is `opts`' size; undefined for none. */
async function reservedFor(opts: UpOptions): Promise<SystemReserved | undefined> {
  if (opts.nodeCpu === undefined && opts.nodeMemory === undefined) return undefined;
  const hostMilliCpu = navigator.hardwareConcurrency * 1000;
  const memTotalKiB = Number(
    (await Deno.readTextFile("/proc/meminfo")).match(/^MemTotal:\s+(\d+) kB/m)?.[1] ?? NaN,
  );
  const hostMemBytes = memTotalKiB * 1024;
  const wantCpu = opts.nodeCpu === undefined ? hostMilliCpu : parseMilliCpu(opts.nodeCpu);
  const wantMem = opts.nodeMemory === undefined ? hostMemBytes : parseBytes(opts.nodeMemory);
  if (wantCpu === undefined || wantCpu <= 0 || wantCpu > hostMilliCpu) {
    throw new StepError(
      "preflight",
      `--node-cpu ${opts.nodeCpu}: want 0 < cpu <= ${hostMilliCpu}m`,
    );
  }
  if (wantMem === undefined || wantMem <= 0 || wantMem > hostMemBytes) {
    throw new StepError(
      "preflight",
      `--node-memory ${opts.nodeMemory}: want 0 < memory <= ${hostMemBytes} bytes`,
    );
  }
  return { milliCpu: hostMilliCpu - wantCpu, memBytes: Math.floor(hostMemBytes - wantMem) };
}

function nodeCtx(ctx: Ctx, reserved?: SystemReserved): NodeContext {
  const p = controlPlanePaths(ctx.dir);
  return {
    ...(reserved ? { reserved } : {}),
    binDir: ctx.binDir,
    pki: p.pki,
    logs: p.logs,
    pids: p.pids,
    stagingDir: `${ctx.cacheDir}/images`,
    log: ctx.log,
  };
}

async function up(ctx: Ctx, opts: UpOptions): Promise<void> {
  const t0 = Date.now();
  const nodeCount = opts.nodeCount;
  const reserved = await reservedFor(opts);
  const p = controlPlanePaths(ctx.dir);
  for (const d of [ctx.dir, p.logs, p.pids, RUN_DIR]) await Deno.mkdir(d, { recursive: true });
  await preflight(ctx, opts.fakeNodes.count > 0);
  ctx.log.info("preflight ok", { binDir: ctx.binDir, nodes: nodeCount });
  await recordHostState(ctx);

  const pkiLog = `${p.logs}/pki.log`;
  await ensureCa(p.pki, pkiLog);
  for (const spec of controlPlaneCerts()) await ensureCert(p.pki, spec, pkiLog);
  await writeKubeconfig(p.pki, "admin", p.adminKubeconfig);
  await writeKubeconfig(p.pki, "controller-manager", `${ctx.dir}/controller-manager.kubeconfig`);
  await writeKubeconfig(p.pki, "scheduler", `${ctx.dir}/scheduler.kubeconfig`);
  ctx.log.info("pki ready", { dir: p.pki, kubeconfig: p.adminKubeconfig });

  await setupHostNetwork(`${p.logs}/network.log`);
  ctx.log.info("host network ready", { bridge: BRIDGE });

  await upControlPlane(ctx.dir, ctx.binDir, ctx.log);

  const tImages = Date.now();
  const bctx = {
    repo: ctx.repo,
    cacheDir: ctx.cacheDir,
    logDir: p.logs,
    log: ctx.log.child("images"),
  };
  const images: BuiltImage[] = [await buildPause(bctx), await buildRuntime(bctx)];
  ctx.log.info("images ready", {
    seconds: Math.round((Date.now() - tImages) / 1000),
    images: images.map((i) => i.ref),
  });

  for (const i of await nodeIndicesPresent(ctx.dir)) {
    if (i >= nodeCount) {
      const n = nodeLayout(ctx.dir, i);
      await downNode(n, nodeCtx(ctx));
      await adminRequest(ctx.dir, `/api/v1/nodes/${n.name}`, { method: "DELETE" });
      ctx.log.info("node removed", { node: n.name });
    }
  }
  const nodes = Array.from({ length: nodeCount }, (_, i) => nodeLayout(ctx.dir, i));
  for (const n of nodes) await upNode(n, nodeCtx(ctx, reserved), images);

  const deadline = Date.now() + 180_000;
  let statuses: NodeStatus[] = [];
  for (;;) {
    statuses = await nodeStatuses(ctx.dir).catch(() => []);
    const ready = nodes.every((n) => statuses.find((s) => s.name === n.name)?.ready);
    if (ready) break;
    if (Date.now() > deadline) {
      const bad = nodes.filter((n) => !statuses.find((s) => s.name === n.name)?.ready);
      const first = bad[0]!;
      throw new StepError(
        `${first.name}.ready`,
        `nodes not Ready after 180 s: ${bad.map((n) => n.name).join(", ")}`,
        { logFile: `${p.logs}/${first.name}-kubelet.log` },
      );
    }
    await sleep(500);
  }
  for (const n of nodes) {
    if (statuses.find((s) => s.name === n.name)?.podCidr === undefined) {
      const r = await adminRequest(ctx.dir, `/api/v1/nodes/${n.name}`, {
        method: "PATCH",
        contentType: "application/merge-patch+json",
        body: JSON.stringify({ spec: { podCIDR: n.podCidr, podCIDRs: [n.podCidr] } }),
      });
      if (r.status !== 200) {
        throw new StepError(`${n.name}.pod-cidr`, `HTTP ${r.status}: ${r.body.slice(0, 200)}`);
      }
    }
  }
  const fakeNames = await upFakeNodes(ctx, opts.fakeNodes);
  const state: ClusterState = {
    version: 1,
    dir: ctx.dir,
    kubeconfig: p.adminKubeconfig,
    binDir: ctx.binDir,
    apiserverUrl: APISERVER_URL,
    k8sVersion: K8S_VERSION,
    nodes: nodes.map((n) => ({
      name: n.name,
      ip: n.ip,
      containerdSocket: n.containerdSocket,
      podCidr: n.podCidr,
    })),
    ...(opts.nodeCpu === undefined ? {} : { nodeCpu: opts.nodeCpu }),
    ...(opts.nodeMemory === undefined ? {} : { nodeMemory: opts.nodeMemory }),
    ...(fakeNames.length === 0 ? {} : {
      fakeNodes: { names: fakeNames, cpu: opts.fakeNodes.cpu, memory: opts.fakeNodes.memory },
    }),
  };
  await Deno.writeTextFile(`${p.stateFile}.tmp`, JSON.stringify(state, null, 2) + "\n");
  await Deno.rename(`${p.stateFile}.tmp`, p.stateFile);
  ctx.log.info("cluster ready", {
    seconds: Math.round((Date.now() - t0) / 100) / 10,
    nodes: nodes.map((n) => n.name),
    ...(reserved ? { nodeCpu: opts.nodeCpu ?? "all", nodeMemory: opts.nodeMemory ?? "all" } : {}),
    kubeconfig: p.adminKubeconfig,
    apiserver: APISERVER_URL,
  });
}

/** Starts (or stops) KWOK and makes the fake Node objects match `want`; returns their names. */
async function upFakeNodes(ctx: Ctx, want: UpOptions["fakeNodes"]): Promise<string[]> {
  const p = controlPlanePaths(ctx.dir);
  const names = Array.from({ length: want.count }, (_, j) => fakeNodeName(j));
  const existing = (await nodeStatuses(ctx.dir)).map((n) => n.name).filter((n) =>
    /^fake-\d+$/.test(n)
  );
  for (const name of existing) {
    if (!names.includes(name)) {
      await adminRequest(ctx.dir, `/api/v1/nodes/${name}`, { method: "DELETE" });
      ctx.log.info("fake node removed", { node: name });
    }
  }
  if (want.count === 0) {
    if (await stopDaemon(p.pids, "kwok", "kwok")) ctx.log.info("kwok stopped", {});
    return [];
  }
  const stages = kwokStages();
  await Deno.writeTextFile(`${ctx.dir}/kwok.yaml`, stages);
  const kwok = await startDaemon({
    name: "kwok",
    cmd: kwokCmd(ctx.binDir, p.adminKubeconfig, `${ctx.dir}/kwok.yaml`),
    logFile: `${p.logs}/kwok.log`,
    pidDir: p.pids,
    configText: stages,
  });
  for (let j = 0; j < want.count; j++) {
    const node = fakeNodeObject(j, want.cpu, want.memory);
    const body = JSON.stringify(node);
    const r = await adminRequest(ctx.dir, "/api/v1/nodes", {
      method: "POST",
      body,
      contentType: "application/json",
    });
    if (r.status === 409) {
      // Exists: bring its size in line (status subresource; KWOK keeps the rest).
      const patch = await adminRequest(ctx.dir, `/api/v1/nodes/${fakeNodeName(j)}/status`, {
        method: "PATCH",
        contentType: "application/merge-patch+json",
        body: JSON.stringify({ status: node.status }),
      });
      if (patch.status !== 200) {
        throw new StepError("fake-nodes", `PATCH ${fakeNodeName(j)}: HTTP ${patch.status}`);
      }
    } else if (r.status !== 201) {
      throw new StepError("fake-nodes", `POST node ${fakeNodeName(j)}: HTTP ${r.status} ${r.body}`);
    }
  }
  const deadline = Date.now() + 60_000;
  for (;;) {
    const st = await nodeStatuses(ctx.dir);
    if (names.every((n) => st.find((s) => s.name === n)?.ready)) break;
    if (Date.now() > deadline) {
      throw new StepError("fake-nodes", "fake nodes not Ready after 60 s", {
        logFile: `${p.logs}/kwok.log`,
      });
    }
    await sleep(500);
  }
  ctx.log.info(kwok.started ? "kwok started" : "kwok running", {
    pid: kwok.pid,
    fakeNodes: names.length,
    cpu: want.cpu,
    memory: want.memory,
  });
  return names;
}

async function down(ctx: Ctx, purge: boolean): Promise<void> {
  const t0 = Date.now();
  const p = controlPlanePaths(ctx.dir);
  await Deno.remove(p.stateFile).catch(() => {});
  for (const i of await nodeIndicesPresent(ctx.dir)) {
    await downNode(nodeLayout(ctx.dir, i), nodeCtx(ctx));
  }
  if (await stopDaemon(p.pids, "kwok", "kwok")) ctx.log.info("kwok stopped", {});
  await downControlPlane(ctx.dir, ctx.log);
  await Deno.remove(p.etcdData, { recursive: true }).catch(() => {});
  let ipForward = "0";
  if (await exists(p.hostStateFile)) {
    const host = HostStateSchema.parse(JSON.parse(await Deno.readTextFile(p.hostStateFile)));
    ipForward = host.ipForward;
    for (const [k, v] of Object.entries(host.sysctls)) {
      await run(["sysctl", "-qw", `${k}=${v}`], { step: "restore-sysctl", allowFail: true });
    }
  }
  await teardownHostNetwork(`${p.logs}/network.log`, ipForward);
  await Deno.remove(p.hostStateFile).catch(() => {});
  const leftMounts = await mountsUnder([ctx.dir, RUN_DIR]);
  for (const mp of leftMounts) await run(["umount", "-l", mp], { step: "umount", allowFail: true });
  await Deno.remove(RUN_DIR, { recursive: true }).catch(() => {});
  if (purge) await Deno.remove(ctx.dir, { recursive: true }).catch(() => {});
  const left = await leftovers(ctx);
  if (left.length > 0) throw new StepError("down", `left behind: ${left.join("; ")}`);
  ctx.log.info("cluster down", { seconds: Math.round((Date.now() - t0) / 100) / 10, purge });
}

/** Anything of ours still present: processes, namespaces, bridge, mounts. */
async function leftovers(ctx: Ctx): Promise<string[]> {
  const out: string[] = [];
  const pids = controlPlanePaths(ctx.dir).pids;
  if (await exists(pids)) {
    for await (const e of Deno.readDir(pids)) {
      const pid = await readPid(pids, e.name.replace(/\.pid$/, ""));
      if (pid !== undefined && await exists(`/proc/${pid}`)) out.push(`process ${e.name} ${pid}`);
    }
  }
  for (const ns of await existingNodeNetns()) out.push(`netns ${ns}`);
  const br = await run(["ip", "link", "show", BRIDGE], { step: "down.check", allowFail: true });
  if (br.code === 0) out.push(`bridge ${BRIDGE}`);
  for (const mp of await mountsUnder([ctx.dir, RUN_DIR])) out.push(`mount ${mp}`);
  return out;
}

async function status(ctx: Ctx, json: boolean): Promise<number> {
  const p = controlPlanePaths(ctx.dir);
  const procs: { name: string; pid: number | null }[] = [];
  for (const c of CONTROL_PLANE) {
    procs.push({ name: c.name, pid: (await runningPid(p.pids, c.name, c.bin)) ?? null });
  }
  if (await exists(`${ctx.dir}/kwok.yaml`) && (await readPid(p.pids, "kwok")) !== undefined) {
    procs.push({ name: "kwok", pid: (await runningPid(p.pids, "kwok", "kwok")) ?? null });
  }
  const indices = await nodeIndicesPresent(ctx.dir);
  for (const i of indices) {
    for (const [what, bin] of [["containerd", "containerd"], ["kubelet", "kubelet"]] as const) {
      const name = `node-${i}-${what}`;
      procs.push({ name, pid: (await runningPid(p.pids, name, bin)) ?? null });
    }
  }
  let nodes: NodeStatus[] = [];
  let apiserverUp = false;
  try {
    apiserverUp = (await adminRequest(ctx.dir, "/readyz")).status === 200;
    nodes = await nodeStatuses(ctx.dir);
  } catch {
    // The apiserver is not reachable: reported as apiserverUp=false below.
  }
  let state: ClusterState | undefined;
  if (await exists(p.stateFile)) {
    state = ClusterStateSchema.parse(JSON.parse(await Deno.readTextFile(p.stateFile)));
  }
  const upNow = state !== undefined && apiserverUp && procs.every((x) => x.pid !== null) &&
    state.nodes.every((n) => nodes.find((s) => s.name === n.name)?.ready);
  const result = {
    up: upNow,
    dir: ctx.dir,
    apiserverUrl: APISERVER_URL,
    apiserverReady: apiserverUp,
    kubeconfig: p.adminKubeconfig,
    binDir: ctx.binDir,
    processes: procs,
    nodes: (state?.nodes ?? []).map((n) => ({
      ...n,
      ready: nodes.find((s) => s.name === n.name)?.ready ?? false,
    })),
  };
  if (json) writeStdout(JSON.stringify(result, null, 2) + "\n");
  else {
    const lines = [
      `cluster ${upNow ? "UP" : "NOT UP"}  dir=${ctx.dir}  apiserver=${APISERVER_URL} ${
        apiserverUp ? "ready" : "not ready"
      }`,
      ...procs.map((x) => `  ${x.name.padEnd(26)} ${x.pid === null ? "stopped" : `pid ${x.pid}`}`),
      ...result.nodes.map((n) =>
        `  node ${n.name.padEnd(8)} ${n.ip.padEnd(12)} pods ${n.podCidr.padEnd(15)} ${
          n.ready ? "Ready" : "NotReady"
        }`
      ),
    ];
    writeStdout(lines.join("\n") + "\n");
  }
  return upNow ? 0 : 1;
}

function env(ctx: Ctx): void {
  const p = controlPlanePaths(ctx.dir);
  writeStdout([
    `export NEONVM_CLUSTER_DIR=${ctx.dir}`,
    `export KUBECONFIG=${p.adminKubeconfig}`,
    `export PATH=${ctx.binDir}:$PATH`,
    "",
  ].join("\n"));
}

async function previousState(dir: string): Promise<ClusterState | undefined> {
  const f = controlPlanePaths(dir).stateFile;
  if (!(await exists(f))) return undefined;
  const parsed = ClusterStateSchema.safeParse(JSON.parse(await Deno.readTextFile(f)));
  return parsed.success ? parsed.data : undefined;
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      nodes: { type: "string" },
      "node-cpu": { type: "string" },
      "node-memory": { type: "string" },
      "fake-nodes": { type: "string" },
      "fake-node-cpu": { type: "string" },
      "fake-node-memory": { type: "string" },
      json: { type: "boolean", default: false },
      purge: { type: "boolean", default: false },
    },
  });
  const command = positionals[0];
  const log = createLogger("cluster");
  const cacheDir = Deno.env.get("NEONVM_CACHE") ?? DEFAULT_CACHE_DIR;
  const ctx: Ctx = {
    dir: Deno.env.get("NEONVM_CLUSTER_DIR") ?? DEFAULT_CLUSTER_DIR,
    cacheDir,
    repo: new URL("../..", import.meta.url).pathname.replace(/\/$/, ""),
    binDir: binDirFor(cacheDir),
    log,
  };
  // up and down from two shells at once would race on the same processes and files.
  const lock = command === "up" || command === "down"
    ? await Deno.open(`${RUN_DIR}.lock`, { create: true, write: true })
    : undefined;
  try {
    if (lock) await lock.lock(true);
    switch (command) {
      case "up": {
        // Flags left out keep what the running cluster has, so a plain `cluster:up` from one
        // shell never shrinks a cluster another shell sized; "all" resets a size to the machine.
        const prev = await previousState(ctx.dir);
        const nodeCount = z.coerce.number().int().min(1).max(MAX_NODES).parse(
          values.nodes ?? String(prev?.nodes.length || 1),
        );
        const size = (flag: string | undefined, before: string | undefined) =>
          flag === "all" ? undefined : flag ?? before;
        const fakeCount = z.coerce.number().int().min(0).max(MAX_FAKE_NODES).parse(
          values["fake-nodes"] ?? String(prev?.fakeNodes?.names.length ?? 0),
        );
        await up(ctx, {
          nodeCount,
          fakeNodes: {
            count: fakeCount,
            cpu: values["fake-node-cpu"] ?? prev?.fakeNodes?.cpu ?? "4",
            memory: values["fake-node-memory"] ?? prev?.fakeNodes?.memory ?? "16Gi",
          },
          nodeCpu: size(values["node-cpu"], prev?.nodeCpu),
          nodeMemory: size(values["node-memory"], prev?.nodeMemory),
        });
        return 0;
      }
      case "down":
        await down(ctx, values.purge ?? false);
        return 0;
      case "status":
        return await status(ctx, values.json ?? false);
      case "env":
        env(ctx);
        return 0;
      default:
        log.error(
          "usage: main.ts up [--nodes N] [--node-cpu Q|all] [--node-memory Q|all] [--fake-nodes M] [--fake-node-cpu Q] [--fake-node-memory Q] | down [--purge] | status [--json] | env",
          {},
        );
        return 2;
    }
  } catch (err) {
    const fields: Record<string, unknown> = { error: errorToJson(err) };
    if (err instanceof StepError) {
      fields.step = err.step;
      if (err.logFile) fields.logFile = err.logFile;
    }
    log.error(`cluster ${command} failed`, fields);
    return 1;
  } finally {
    lock?.close();
  }
}

Deno.exit(await main());
