/**
 * Test helpers for the scheduler cluster suites: run our scheduler (`src/scheduler/main.ts`) and a
 * second upstream kube-scheduler wired to it as host processes against the local cluster, with a
 * scheduler name unique to the test run so nothing else in the cluster is affected; plus kubectl
 * helpers. Must not change the cluster outside the test's namespace (CRDs are applied
 * idempotently).
 * @module
 */
import { type ClusterEnv, kubectlOk, waitFor as harnessWaitFor } from "../harness/cluster.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** Runs kubectl and throws on a non-zero exit. */
export const ok = kubectlOk;

/** Applies the NeonVM CRDs (idempotent) and waits until they are established. */
export async function applyCrds(env: ClusterEnv): Promise<void> {
  for (
    const f of ["vm.neon.tech_virtualmachines.yaml", "vm.neon.tech_virtualmachinemigrations.yaml"]
  ) {
    await ok(env, ["apply", "--server-side", "--force-conflicts", "-f", `${ROOT}deploy/crds/${f}`]);
  }
  await ok(env, [
    "wait",
    "--for=condition=Established",
    "crd/virtualmachines.vm.neon.tech",
    "crd/virtualmachinemigrations.vm.neon.tech",
    "--timeout=60s",
  ]);
}

/** A free loopback port. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const p = (l.addr as Deno.NetAddr).port;
  l.close();
  return p;
}

/** A child process whose stderr lines are collected. */
export interface Proc extends AsyncDisposable {
  /** Lines logged so far. */
  readonly log: string[];
  /** Kills it hard (SIGKILL) and waits for it to exit. */
  kill9(): Promise<void>;
}

function spawn(cmd: string, args: string[]): Proc {
  const child = new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).spawn();
  const log: string[] = [];
  const reading = (async () => {
    let buf = "";
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let i: number;
      while ((i = buf.indexOf("\n")) >= 0) {
        log.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    }
  })();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const stop = async (sig: Deno.Signal) => {
    if (!exited) {
      try {
        child.kill(sig);
      } catch {
        // Already gone.
      }
    }
    await status;
    await reading;
  };
  return {
    log,
    kill9: () => stop("SIGKILL"),
    [Symbol.asyncDispose]: () => stop("SIGTERM"),
  };
}

/** Our scheduler, listening on loopback. */
export interface SchedulerProc extends Proc {
  /** Base URL of the permit API + extender. */
  readonly url: string;
  /** Base URL of metrics and health. */
  readonly opsUrl: string;
}

/** Starts our scheduler with `schedulerName`; resolves once /readyz answers 200. */
export async function startScheduler(
  env: ClusterEnv,
  dir: string,
  schedulerName: string,
  port: number,
  extraArgs: string[] = [],
): Promise<SchedulerProc & { readyAfterMs: number }> {
  const configPath = `${dir}/autoscale-enforcer-config.json`;
  await Deno.writeTextFile(configPath, JSON.stringify({ schedulerName, watermark: 0.9 }));
  const opsPort = freePort();
  const started = Date.now();
  const p = spawn(Deno.execPath(), [
    "run",
    "-A",
    `${ROOT}src/scheduler/main.ts`,
    `--kubeconfig=${env.kubeconfig}`,
    `--config=${configPath}`,
    `--listen-addr=127.0.0.1:${port}`,
    `--metrics-addr=127.0.0.1:${opsPort}`,
    ...extraArgs,
  ]);
  const opsUrl = `http://127.0.0.1:${opsPort}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const r = await fetch(`${opsUrl}/readyz`);
      await r.body?.cancel();
      if (r.status === 200) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await p[Symbol.asyncDispose]();
      throw new Error(`scheduler not ready in 60 s:\n${p.log.slice(-20).join("\n")}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { ...p, url: `http://127.0.0.1:${port}`, opsUrl, readyAfterMs: Date.now() - started };
}

/** Starts the upstream kube-scheduler with one profile `schedulerName` and our extender. */
export async function startKubeScheduler(
  env: ClusterEnv,
  dir: string,
  schedulerName: string,
  extenderUrl: string,
): Promise<Proc> {
  const config = `${dir}/kube-scheduler.yaml`;
  // Same shape as deploy/scheduler/kube-scheduler-config.yaml, with this run's names.
  await Deno.writeTextFile(
    config,
    [
      "apiVersion: kubescheduler.config.k8s.io/v1",
      "kind: KubeSchedulerConfiguration",
      "clientConnection:",
      `  kubeconfig: ${env.kubeconfig}`,
      "leaderElection:",
      "  leaderElect: false",
      "profiles:",
      `  - schedulerName: ${schedulerName}`,
      "    plugins:",
      "      score:",
      "        disabled:",
      "          - name: ImageLocality",
      "          - name: NodeResourcesBalancedAllocation",
      "          - name: NodeResourcesFit",
      "extenders:",
      `  - urlPrefix: "${extenderUrl}/scheduler"`,
      "    filterVerb: filter",
      "    prioritizeVerb: prioritize",
      "    weight: 1",
      "    bindVerb: bind",
      "    enableHTTPS: false",
      "    httpTimeout: 5s",
      "    nodeCacheCapable: true",
      "    ignorable: false",
      "",
    ].join("\n"),
  );
  await Deno.mkdir(`${dir}/certs`, { recursive: true });
  return spawn(`${env.binDir}/kube-scheduler`, [
    `--config=${config}`,
    `--secure-port=${freePort()}`,
    "--bind-address=127.0.0.1",
    `--cert-dir=${dir}/certs`,
    "-v=2",
  ]);
}

/** Polls `probe` every 250 ms until it returns a value or `timeoutMs` passes. */
export function waitFor<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined>,
  describe?: () => Promise<string>,
): Promise<T> {
  return harnessWaitFor(what, timeoutMs, probe, describe, 250);
}

/** A VirtualMachine (1 GiB slots) as JSON for `kubectl apply`. */
export function vmManifest(
  name: string,
  ns: string,
  cpu: string,
  slots: number,
  maxSlots = 16,
  slotSize = "1Gi",
  labels: Record<string, string> = {},
): Record<string, unknown> {
  return {
    apiVersion: "vm.neon.tech/v1",
    kind: "VirtualMachine",
    metadata: {
      name,
      namespace: ns,
      labels: { "autoscaling.neon.tech/enabled": "true", ...labels },
    },
    spec: {
      guest: {
        cpus: { min: "250m", max: 4, use: cpu },
        memorySlots: { min: 1, max: maxSlots, use: slots },
        memorySlotSize: slotSize,
        rootDisk: { image: "localhost/neonvm-ts/test-guest:dev" },
      },
    },
  };
}

/**
 * A stand-in runner pod for a VM (owned by it, with the controller's `vm.neon.tech/resources`
 * annotation), scheduled by `schedulerName`. It runs a sleeping container of the runtime image;
 * the scheduler only reads its annotations.
 */
export function runnerPodManifest(
  vm: { name: string; uid: string },
  ns: string,
  schedulerName: string,
  cpuUse: string,
  slots: number,
  maxSlots = 16,
  slotSize = "1Gi",
  labels: Record<string, string> = {},
  nodeName?: string,
): Record<string, unknown> {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: `${vm.name}-pod`,
      namespace: ns,
      labels: {
        "vm.neon.tech/name": vm.name,
        "autoscaling.neon.tech/enabled": "true",
        ...labels,
      },
      annotations: {
        "vm.neon.tech/resources": JSON.stringify({
          cpus: { min: "250m", max: 4, use: cpuUse },
          memorySlots: { min: 1, max: maxSlots, use: slots },
          memorySlotSize: slotSize,
        }),
      },
      ownerReferences: [{
        apiVersion: "vm.neon.tech/v1",
        kind: "VirtualMachine",
        name: vm.name,
        uid: vm.uid,
        controller: true,
      }],
    },
    spec: {
      schedulerName,
      ...(nodeName ? { nodeSelector: { "kubernetes.io/hostname": nodeName } } : {}),
      terminationGracePeriodSeconds: 1,
      containers: [{
        name: "neonvm-runner",
        image: "localhost/neonvm-ts/runtime:dev",
        imagePullPolicy: "Never",
        command: ["sleep", "3600"],
        resources: { requests: { cpu: "10m", memory: "16Mi" } },
      }],
    },
  };
}
