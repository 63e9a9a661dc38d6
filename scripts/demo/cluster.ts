/**
 * The demo's view of the local cluster: where it is (cluster.json), kubectl calls, reading one
 * VirtualMachine, waiting with progress, and scraping the guest's metrics exporter by pod IP.
 * Must not start or stop the cluster (that is `deno task cluster:up`) nor change other
 * namespaces than the ones it is given.
 * @module
 */
import { ClusterStateSchema, controlPlanePaths, DEFAULT_CLUSTER_DIR } from "../cluster/layout.ts";
import { extractSystemMetrics, type SystemMetrics } from "../../src/agent/core/metrics.ts";
import { parsePromText } from "../../src/agent/core/prom_text.ts";
import {
  ANNOTATION_RESOURCES_APPROVED,
  ANNOTATION_RESOURCES_REQUESTED,
  parseResourcesAnnotation,
} from "../../src/api/annotations.ts";
import type { Resources } from "../../src/api/quantity.ts";
import {
  cpuUseMilli,
  memoryUseBytes,
  type VirtualMachine,
  VirtualMachineSchema,
} from "../../src/api/virtualmachine.ts";
import type { Logger } from "../../src/lib/log.ts";
import type { KubeClient } from "../../src/lib/k8s/client.ts";
import { VIRTUAL_MACHINES } from "../../src/lib/k8s/meta.ts";
import type { LoadTarget } from "./load.ts";
import { memoryPressureSql, pgConn } from "./manifests.ts";
import type { VmObservation } from "./timeline.ts";

/** The running local cluster as the demo uses it. */
export interface DemoCluster {
  /** Cluster directory. */
  dir: string;
  /** Admin kubeconfig. */
  kubeconfig: string;
  /** kubectl binary. */
  kubectl: string;
  /** Number of nodes. */
  nodeCount: number;
  /** Node names. */
  nodeNames: string[];
}

/** Reads `<cluster dir>/cluster.json`; throws when the cluster was never brought up. */
export async function loadCluster(
  dir = Deno.env.get("NEONVM_CLUSTER_DIR") ?? DEFAULT_CLUSTER_DIR,
): Promise<DemoCluster> {
  const file = controlPlanePaths(dir).stateFile;
  const text = await Deno.readTextFile(file).catch((e) => {
    throw new Error(`no local cluster (${file}): run deno task cluster:up`, { cause: e });
  });
  const s = ClusterStateSchema.parse(JSON.parse(text));
  return {
    dir: s.dir,
    kubeconfig: s.kubeconfig,
    kubectl: `${s.binDir}/kubectl`,
    nodeCount: s.nodes.length,
    nodeNames: s.nodes.map((n) => n.name),
  };
}

/** Result of one kubectl call. */
export interface Kubectl {
  /** Exit code. */
  code: number;
  /** Standard output. */
  stdout: string;
  /** Standard error. */
  stderr: string;
}

/** Runs kubectl with the admin kubeconfig; never throws on a non-zero exit. */
export async function kubectl(
  c: DemoCluster,
  args: string[],
  opts: { stdin?: string; timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<Kubectl> {
  const ac = new AbortController();
  const timer = opts.timeoutMs ? setTimeout(() => ac.abort(), opts.timeoutMs) : undefined;
  const onAbort = () => ac.abort();
  opts.signal?.addEventListener("abort", onAbort);
  try {
    const child = new Deno.Command(c.kubectl, {
      args: ["--kubeconfig", c.kubeconfig, ...args],
      stdin: opts.stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
      signal: ac.signal,
    }).spawn();
    if (opts.stdin !== undefined) {
      const w = child.stdin.getWriter();
      await w.write(new TextEncoder().encode(opts.stdin));
      await w.close();
    }
    const out = await child.output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    opts.signal?.removeEventListener("abort", onAbort);
  }
}

/** Runs kubectl and throws with its error output on a non-zero exit. */
export async function kubectlOk(
  c: DemoCluster,
  args: string[],
  opts: { stdin?: string; timeoutMs?: number } = {},
): Promise<string> {
  const r = await kubectl(c, args, opts);
  if (r.code !== 0) {
    throw new Error(`kubectl ${args.join(" ")}: exit ${r.code}: ${r.stderr.trim() || r.stdout}`);
  }
  return r.stdout;
}

/** Applies JSON objects (one `kubectl apply -f -`). */
export async function applyObjects(c: DemoCluster, objs: readonly unknown[]): Promise<void> {
  await kubectlOk(c, ["apply", "-f", "-"], {
    stdin: JSON.stringify({ apiVersion: "v1", kind: "List", items: objs }),
    timeoutMs: 60_000,
  });
}

/** Reads one VM; undefined when it does not exist. */
export async function getVm(
  c: DemoCluster,
  ns: string,
  name: string,
): Promise<VirtualMachine | undefined> {
  const r = await kubectl(c, [
    "get",
    "virtualmachines.vm.neon.tech",
    "-n",
    ns,
    name,
    "-o",
    "json",
    "--request-timeout=10s",
  ]);
  if (r.code !== 0) {
    if (/NotFound|not found/.test(r.stderr)) return undefined;
    throw new Error(`get vm ${ns}/${name}: ${r.stderr.trim()}`);
  }
  return VirtualMachineSchema.parse(JSON.parse(r.stdout));
}

/** What the demo tracks of a VM at one moment. */
export interface VmSnapshot {
  /** Phase. */
  phase: string;
  /** Pod IP, when running. */
  podIp: string | undefined;
  /** Runner pod name. */
  podName: string | undefined;
  /** Node. */
  node: string | undefined;
  /** spec.guest.cpus.use (the agent's patch), MilliCPU. */
  cpuUseMilli: number;
  /** spec memory in use (the agent's patch), bytes. */
  memUseBytes: number;
  /** status.cpus (what the guest has), MilliCPU. */
  cpuStatusMilli: number | undefined;
  /** status.memorySize, bytes. */
  memStatusBytes: number | undefined;
  /** Scheduler-approved CPU, MilliCPU. */
  cpuApprovedMilli: number | undefined;
  /** Scheduler-approved memory, bytes. */
  memApprovedBytes: number | undefined;
  /** Pod restart count as the VM counts it. */
  restartCount: number;
}

/** The fields of `vm` the demo tracks. */
export function snapshotOf(vm: VirtualMachine): VmSnapshot {
  const text = vm.metadata.annotations?.[ANNOTATION_RESOURCES_APPROVED];
  const approved = text === undefined
    ? undefined
    : parseResourcesAnnotation(text, ANNOTATION_RESOURCES_APPROVED);
  const a = approved?.ok ? approved.value : undefined;
  return {
    phase: vm.status?.phase ?? "",
    podIp: vm.status?.podIP || undefined,
    podName: vm.status?.podName || undefined,
    node: vm.status?.node || undefined,
    cpuUseMilli: cpuUseMilli(vm),
    memUseBytes: memoryUseBytes(vm),
    cpuStatusMilli: vm.status?.cpus,
    memStatusBytes: vm.status?.memorySize,
    cpuApprovedMilli: a?.vCPUs,
    memApprovedBytes: a?.mem,
    restartCount: vm.status?.restartCount ?? 0,
  };
}

/** Scrapes the guest's exporter at `ip:9100`; undefined when it does not answer in time. */
export async function scrapeGuest(
  ip: string,
  timeoutMs = 3000,
): Promise<SystemMetrics | undefined> {
  try {
    const res = await fetch(`http://${ip}:9100/metrics`, {
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!res.ok) {
      await res.body?.cancel();
      return undefined;
    }
    const m = extractSystemMetrics(parsePromText(await res.text()));
    return m.ok ? m.value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Polls `check` every `intervalMs` until it returns a value (not undefined), logging progress
 * every 15 s with what `describe` says; throws after `timeoutMs`.
 */
export async function waitUntil<T>(
  log: Logger,
  what: string,
  check: () => Promise<T | undefined>,
  opts: { timeoutMs: number; intervalMs?: number; describe?: () => string },
): Promise<T> {
  const t0 = performance.now();
  let lastLog = t0;
  let lastErr = "";
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) {
        log.info(`${what}: done`, { seconds: Math.round((performance.now() - t0) / 100) / 10 });
        return v;
      }
    } catch (e) {
      lastErr = e instanceof Error ? e.message : String(e);
    }
    const now = performance.now();
    if (now - t0 > opts.timeoutMs) {
      throw new Error(
        `timed out after ${Math.round(opts.timeoutMs / 1000)} s waiting for ${what}${
          lastErr ? ` (last error: ${lastErr})` : ""
        }${opts.describe ? `; ${opts.describe()}` : ""}`,
      );
    }
    if (now - lastLog > 15_000) {
      lastLog = now;
      log.info(`${what}: waiting`, {
        seconds: Math.round((now - t0) / 1000),
        ...(opts.describe ? { state: opts.describe() } : {}),
        ...(lastErr ? { lastError: lastErr } : {}),
      });
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 2000));
  }
}

/** The VM object's fields the reaction timing tracks, at `tMs`. */
export function observe(vm: VirtualMachine, tMs: number): VmObservation {
  const ann = (key: string): Resources | undefined => {
    const text = vm.metadata.annotations?.[key];
    if (text === undefined) return undefined;
    const r = parseResourcesAnnotation(text, key);
    return r.ok ? r.value : undefined;
  };
  const req = ann(ANNOTATION_RESOURCES_REQUESTED);
  const app = ann(ANNOTATION_RESOURCES_APPROVED);
  return {
    tMs,
    phase: vm.status?.phase ?? "",
    cpuUseMilli: cpuUseMilli(vm),
    memUseBytes: memoryUseBytes(vm),
    cpuStatusMilli: vm.status?.cpus,
    memStatusBytes: vm.status?.memorySize,
    cpuRequestedMilli: req?.vCPUs,
    memRequestedBytes: req?.mem,
    cpuApprovedMilli: app?.vCPUs,
    memApprovedBytes: app?.mem,
  };
}

/**
 * Watches one VM and keeps every state it passes through, stamped (epoch ms) when received: the
 * precise times of the agent's patch and of the status change, which sampling would round.
 */
export class VmWatch {
  /** Every state seen, oldest first. */
  readonly history: VmObservation[] = [];
  /** The latest object. */
  vm: VirtualMachine | undefined;
  #done: Promise<void> | undefined;
  readonly #ac = new AbortController();

  /** Watches `ns/name` through `kube` once started. */
  constructor(
    private readonly kube: KubeClient,
    private readonly ns: string,
    private readonly name: string,
    private readonly log: Logger,
  ) {}

  /** The latest state. */
  get latest(): VmObservation | undefined {
    return this.history.at(-1);
  }

  /** Time of the latest change of the spec use values. */
  lastSpecChangeMs(): number {
    const h = this.history;
    for (let i = h.length - 1; i > 0; i--) {
      if (
        h[i]!.cpuUseMilli !== h[i - 1]!.cpuUseMilli || h[i]!.memUseBytes !== h[i - 1]!.memUseBytes
      ) {
        return h[i]!.tMs;
      }
    }
    return h[0]?.tMs ?? 0;
  }

  /** Starts watching (list, then watch; re-lists after errors). */
  start(): void {
    this.#done = this.#loop();
  }

  #record(vm: VirtualMachine): void {
    this.vm = vm;
    this.history.push(observe(vm, Date.now()));
  }

  async #loop(): Promise<void> {
    const res = this.kube.resource(VIRTUAL_MACHINES, VirtualMachineSchema);
    const fieldSelector = `metadata.name=${this.name}`;
    const signal = this.#ac.signal;
    let rv: string | undefined;
    while (!signal.aborted) {
      try {
        if (rv === undefined) {
          const list = await res.list({ namespace: this.ns, fieldSelector, signal });
          for (const vm of list.items) this.#record(vm);
          rv = list.resourceVersion;
        }
        for await (
          const ev of res.watch({
            namespace: this.ns,
            fieldSelector,
            resourceVersion: rv,
            timeoutSeconds: 120,
            signal,
          })
        ) {
          if (ev.type === "BOOKMARK") rv = ev.resourceVersion;
          else if (ev.type === "ADDED" || ev.type === "MODIFIED") {
            this.#record(ev.object);
            rv = ev.object.metadata.resourceVersion ?? rv;
          } else if (ev.type === "INVALID") {
            this.log.warn("unparsable VM in watch", { error: ev.object.error.message });
          }
        }
      } catch (e) {
        if (signal.aborted) return;
        this.log.warn("VM watch restarts", { error: e instanceof Error ? e.message : String(e) });
        rv = undefined; // Re-list (covers 410 Gone).
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  /** Stops watching. */
  async stop(): Promise<void> {
    this.#ac.abort();
    await this.#done?.catch(() => {});
  }
}

/**
 * Runs `parallel` queries in the load pod that each hold `mib` MiB (a 1 MiB string repeated: filled
 * by memcpy, so the load is memory and hardly CPU) for `holdSec` seconds; resolves when all have
 * finished.
 */
export async function memoryPressure(
  t: LoadTarget,
  ip: string,
  mib: number,
  parallel: number,
  holdSec: number,
): Promise<{ ok: boolean; seconds: number; output: string }> {
  const t0 = performance.now();
  const sql = memoryPressureSql(mib, holdSec);
  const one = `psql "${pgConn(ip)}" -tAc "${sql}" 2>&1`;
  const script = [
    "rc=0; pids=''",
    `for i in $(seq ${parallel}); do ${one} & pids="$pids $!"; done`,
    "for p in $pids; do wait $p || rc=1; done; exit $rc",
  ].join("\n");
  const r = await kubectl(t.cluster, ["exec", "-n", t.namespace, t.pod, "--", "sh", "-c", script], {
    timeoutMs: (holdSec + 300) * 1000,
  });
  return {
    ok: r.code === 0,
    seconds: Math.round((performance.now() - t0) / 100) / 10,
    output: (r.stdout + r.stderr).trim().slice(-400),
  };
}

/**
 * Ends the queries {@linkcode memoryPressure} started on the VM at `ip` (pg_terminate_backend);
 * resolves with how many it ended.
 */
export async function endMemoryPressure(t: LoadTarget, ip: string): Promise<number> {
  const sql = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity " +
    "WHERE query LIKE 'SELECT length(repeat(repeat(%' AND pid <> pg_backend_pid()";
  const r = await kubectl(t.cluster, [
    "exec",
    "-n",
    t.namespace,
    t.pod,
    "--",
    "psql",
    pgConn(ip),
    "-tAc",
    sql,
  ], { timeoutMs: 60_000 });
  return r.code === 0 ? Number(r.stdout.trim()) || 0 : 0;
}

/** Names of the autoscaler-agent pods on `node` (one, unless a rollout is replacing it). */
export async function agentPodsOn(c: DemoCluster, node: string): Promise<string[]> {
  const r = await kubectl(c, [
    "get",
    "pods",
    "-n",
    "kube-system",
    "-l",
    "app.kubernetes.io/name=autoscaler-agent",
    "--field-selector",
    `spec.nodeName=${node}`,
    "-o",
    "jsonpath={.items[*].metadata.name}",
  ], { timeoutMs: 20_000 });
  return r.code === 0 ? r.stdout.trim().split(/\s+/).filter((x) => x !== "") : [];
}
