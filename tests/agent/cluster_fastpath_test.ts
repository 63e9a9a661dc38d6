/**
 * The monitor fast path against a real guest on the local cluster. A VM runs the monitor guest
 * (scripts/guest/monitor_guest.ts: the busybox test guest with Deno, our vm-monitor on a real
 * cgroup v2 `neon-postgres`, and a test driver), started by a host-run neonvm-controller in the
 * test's own namespace, scheduled by the deployed autoscale-scheduler and managed by the deployed
 * autoscaler-agent DaemonSet (deploy/local, applied with scripts/demo/stack.ts when missing).
 * The guest serves no metrics on 9100, so the agent scales only on what the monitor says:
 *  1. a memory hog in the guest's cgroup crosses the monitor's threshold; the monitor sends
 *     `UpscaleRequest` within 1 s of the crossing (both instants on the guest's clock: the hog's
 *     memory.stat samples and the monitor's log line, written right after the send);
 *  2. the agent patches the VM up (spec.guest.memorySlots.use) and then tells the monitor
 *     (`UpscaleNotification`: the monitor logs "applied upscale" and raises memory.high);
 *  3. the VM's bounds annotation is lowered below what the guest uses: the agent asks the monitor
 *     to downscale, the monitor refuses (DownscaleResult Ok=false), the VM keeps its size and runs.
 * Needs `deno task cluster:up` (2 nodes). Takes a few minutes under TCG; cleans up its namespace.
 * @module
 */
import assert from "node:assert/strict";
import { type ClusterEnv, kubectl, requireCluster } from "../harness/cluster.ts";
import {
  applyCrds,
  getVm,
  ok,
  startController,
  waitFor,
} from "../controller/_controller_process.ts";
import {
  buildMonitorGuest,
  importMonitorGuest,
  MONITOR_GUEST_COMMAND,
  MONITOR_GUEST_DRIVER_PORT,
} from "../../scripts/guest/monitor_guest.ts";
import { agentPodsOn, loadCluster } from "../../scripts/demo/cluster.ts";
import { deployStack, waitRollouts } from "../../scripts/demo/stack.ts";
import { buildKubeSchedulerImage, importIntoNodes } from "../../scripts/demo/images.ts";
import { DEFAULT_CACHE_DIR } from "../../scripts/cluster/layout.ts";
import { createLogger } from "../../src/lib/log.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const MiB = 1 << 20;
const VM = "fastpath";

// deno-lint-ignore no-explicit-any
type Json = any;

const t0 = performance.now();
function progress(msg: string, fields: Record<string, unknown> = {}): void {
  const s = ((performance.now() - t0) / 1000).toFixed(1).padStart(6);
  const extra = Object.keys(fields).length > 0 ? ` ${JSON.stringify(fields)}` : "";
  Deno.stdout.writeSync(new TextEncoder().encode(`[${s} s] ${msg}${extra}\n`));
}

/** A JSON line of the monitor's log. */
interface LogLine {
  ts: string;
  msg: string;
  [k: string]: Json;
}

function vmManifest(image: string): string {
  return JSON.stringify({
    apiVersion: "vm.neon.tech/v1",
    kind: "VirtualMachine",
    metadata: { name: VM, labels: { "autoscaling.neon.tech/enabled": "true" } },
    spec: {
      schedulerName: "autoscale-scheduler",
      terminationGracePeriodSeconds: 2,
      enableSSH: false,
      guest: {
        cpus: { min: "250m", max: 1, use: "250m" },
        // Two slots at start leave the guest room for Deno next to a hog above the threshold.
        memorySlots: { min: 2, max: 3, use: 2 },
        memorySlotSize: "1Gi",
        rootDisk: { image, imagePullPolicy: "Never" },
        command: [MONITOR_GUEST_COMMAND],
        ports: [
          { name: "monitor", port: 10301, protocol: "TCP" },
          { name: "driver", port: MONITOR_GUEST_DRIVER_PORT, protocol: "TCP" },
        ],
      },
    },
  });
}

async function fetchText(url: string, init?: RequestInit, timeoutMs = 10_000): Promise<string> {
  const r = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
  const text = await r.text();
  if (!r.ok) throw new Error(`${url}: ${r.status} ${text}`);
  return text;
}

/** Whether the deployed scheduler and agents are rolled out. */
async function stackReady(env: ClusterEnv): Promise<boolean> {
  for (
    const [ns, what] of [
      ["kube-system", "deployment/autoscale-scheduler"],
      ["kube-system", "daemonset/autoscaler-agent"],
    ]
  ) {
    const r = await kubectl(env, ["rollout", "status", "-n", ns!, what!, "--timeout=5s"]);
    if (r.code !== 0) return false;
  }
  return true;
}

/** The guest clock minus the host clock, from the round trip with the least delay. */
async function guestClockOffset(ip: string): Promise<{ offsetMs: number; errorMs: number }> {
  let best = { offsetMs: 0, errorMs: Infinity };
  for (let i = 0; i < 7; i++) {
    const t1 = Date.now();
    const g = Number(await fetchText(`http://${ip}:${MONITOR_GUEST_DRIVER_PORT}/now`));
    const t2 = Date.now();
    if ((t2 - t1) / 2 < best.errorMs) {
      best = { offsetMs: g - (t1 + t2) / 2, errorMs: (t2 - t1) / 2 };
    }
  }
  return best;
}

/** The deployed agent's JSON log lines about VM `ns/name`, parsed. */
async function agentLog(env: ClusterEnv, pod: string, vm: string): Promise<LogLine[]> {
  const r = await kubectl(env, ["-n", "kube-system", "logs", pod]);
  return r.stdout.split("\n").filter((l) => l.startsWith("{") && l.includes(`"${vm}"`))
    .map((l) => JSON.parse(l) as LogLine);
}

Deno.test({
  name: "cluster: guest memory hog -> UpscaleRequest < 1 s, agent patches and notifies, " +
    "downscale below usage refused",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const env = await requireCluster();
    const log = createLogger("fastpath-test", { level: "warn" });
    progress("cluster found", { nodes: env.nodes.map((n) => n.name) });

    // The stack: CRDs, scheduler and agents (deploy/local), deployed unless already running.
    await applyCrds(env);
    // When this test deploys the stack it removes it again, so the suites that run after it (CI's
    // test:e2e) find the cluster as it was.
    const deployedHere =
      (await kubectl(env, ["-n", "kube-system", "get", "daemonset", "autoscaler-agent"])).code !==
        0;
    // Disposed last (after the controller below).
    await using _stack = {
      async [Symbol.asyncDispose]() {
        if (!deployedHere) return;
        await kubectl(env, [
          "delete",
          "-k",
          `${ROOT}deploy/local`,
          "--ignore-not-found",
          "--timeout=120s",
        ]);
        progress("removed the stack this test deployed");
      },
    };
    const c = await loadCluster();
    if (!(await stackReady(env))) {
      progress("deploying the stack (deploy/local)");
      const ctx = {
        cacheDir: DEFAULT_CACHE_DIR,
        logFile: `${c.dir}/logs/demo-images.log`,
        log,
      };
      await importIntoNodes(ctx, await buildKubeSchedulerImage(ctx), c.dir, c.nodeCount);
      await deployStack(log, c);
      await waitRollouts(log, c);
    }
    progress("stack ready");

    const guest = await buildMonitorGuest();
    await importMonitorGuest(guest, env.nodes, `${env.dir}/logs/monitor-guest-import.log`);
    progress("monitor guest image on every node", { image: guest.image });

    const ns = `nvts-fastpath-${crypto.randomUUID().slice(0, 8)}`;
    await ok(env, ["create", "namespace", ns]);
    let ip = "";
    let node = "";
    const monitorLog = async (): Promise<LogLine[]> =>
      (await fetchText(`http://${ip}:${MONITOR_GUEST_DRIVER_PORT}/monitor-log`))
        .split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as LogLine);
    const cgroup = async (): Promise<Json> =>
      JSON.parse(await fetchText(`http://${ip}:${MONITOR_GUEST_DRIVER_PORT}/cgroup`));
    const vmNow = async (): Promise<Json> => await getVm(env, ns, VM);
    const diagnose = async (): Promise<string> => {
      const parts: string[] = [];
      parts.push(JSON.stringify((await vmNow().catch(() => undefined))?.status ?? {}));
      if (ip !== "") {
        parts.push(
          (await monitorLog().catch(() => [])).slice(-30).map((l) => JSON.stringify(l)).join("\n"),
        );
      }
      if (node !== "") {
        const pod = (await agentPodsOn(c, node).catch(() => []))[0];
        if (pod !== undefined) {
          const r = await kubectl(env, ["-n", "kube-system", "logs", pod, "--tail=60"]);
          parts.push(r.stdout.split("\n").filter((l) => l.includes(VM)).slice(-30).join("\n"));
        }
      }
      return parts.join("\n---\n");
    };
    // Disposed after the finally below, so the controller releases the VM's finalizer.
    await using _ctl = startController(env, ns);
    try {
      await ok(env, ["-n", ns, "apply", "-f", "-"], vmManifest(guest.image));
      progress("VM created", { namespace: ns });

      const running = await waitFor("VM Running", 300_000, async () => {
        const vm = await vmNow();
        return vm?.status?.phase === "Running" && vm.status.podIP && vm.status.node
          ? vm
          : undefined;
      }, diagnose);
      ip = running.status.podIP;
      node = running.status.node;
      progress("VM Running", { node, podIP: ip });

      // The guest's workload is up when the driver answers and the monitor applied its sizing.
      await waitFor("monitor listening in the guest", 300_000, async () => {
        const lines = await monitorLog().catch(() => []);
        return lines.some((l) => l.msg === "listening") ? true : undefined;
      }, diagnose);
      progress("vm-monitor listening in the guest");
      await waitFor("agent connected to the monitor", 120_000, async () => {
        const lines = await monitorLog().catch(() => []);
        return lines.some((l) => l.msg === "agent connected") ? true : undefined;
      }, diagnose);
      progress("agent connected to the monitor");
      const before = await vmNow();
      assert.equal(before.spec.guest.memorySlots.use, 2, "no upscale before the hog");

      // 1. The hog: to just above the threshold of the sizing in force (below memory.high).
      const sizingLine = (await monitorLog()).filter((l) => l.sizing?.thresholdBytes).at(-1);
      assert.ok(sizingLine !== undefined, "the monitor logged its sizing");
      const thresholdBytes: number = sizingLine.sizing.thresholdBytes;
      const highBytes: number = sizingLine.sizing.memoryHighBytes;
      const cg0 = await cgroup();
      assert.equal(cg0.high, highBytes, "memory.high is what the monitor set");
      const targetMiB = Math.floor(
        (thresholdBytes + Math.min(48 * MiB, (highBytes - thresholdBytes) / 2)) / MiB,
      );
      progress("starting the hog", {
        thresholdMiB: thresholdBytes / MiB,
        memoryHighMiB: highBytes / MiB,
        targetMiB,
        memTotalMiB: Math.round(cg0.memTotalKiB / 1024),
      });
      const hog = JSON.parse(
        await fetchText(
          `http://${ip}:${MONITOR_GUEST_DRIVER_PORT}/hog?targetMiB=${targetMiB}&fineFromMiB=${
            Math.floor(thresholdBytes / MiB) - 64
          }`,
          { method: "POST" },
          240_000,
        ),
      ) as { startedAt: number; heldAt: number; samples: { t: number; anon: number }[] };
      const k = hog.samples.findIndex((s) => s.anon >= thresholdBytes);
      assert.ok(k > 0, "the hog's samples cross the threshold");
      const crossedAfter = hog.samples[k]!.t;
      const crossedBefore = hog.samples[k - 1]!.t; // usage last seen below the threshold
      progress("hog holds its memory", {
        allocMs: hog.heldAt - hog.startedAt,
        samples: hog.samples.length,
        crossingWindowMs: crossedAfter - crossedBefore,
      });

      const request = await waitFor("UpscaleRequest in the monitor's log", 20_000, async () => {
        const lines = await monitorLog();
        return lines.find((l) =>
          l.msg === "requested upscale" && Date.parse(l.ts) >= crossedBefore
        );
      }, diagnose);
      const requestAt = Date.parse(request.ts);
      const latencyMs = requestAt - crossedBefore;
      progress("UpscaleRequest sent", {
        crossingToRequestMs: latencyMs,
        lastSampleBelowToRequestMs: latencyMs,
        firstSampleAboveToRequestMs: requestAt - crossedAfter,
        avgNonReclaimableMiB: request.avgNonReclaimableMiB,
        thresholdMiB: request.thresholdMiB,
      });
      assert.ok(
        latencyMs <= 1_000,
        `UpscaleRequest ${latencyMs} ms after usage crossed the threshold`,
      );
      assert.ok(request.avgNonReclaimableMiB >= request.thresholdMiB);

      // 2. The agent's patch, then the UpscaleNotification to the monitor.
      const tReq = performance.now();
      const upscaled = await waitFor("agent patches the VM to 3 slots", 60_000, async () => {
        const vm = await vmNow();
        return vm?.spec.guest.memorySlots.use === 3 ? vm : undefined;
      }, diagnose);
      progress("VM spec patched", {
        memorySlotsUse: upscaled.spec.guest.memorySlots.use,
        cpusUse: upscaled.spec.guest.cpus.use,
        secondsAfterRequestSeen: Math.round((performance.now() - tReq) / 100) / 10,
      });
      const notified = await waitFor("UpscaleNotification to the monitor", 60_000, async () => {
        const lines = await monitorLog();
        return lines.find((l) => l.msg === "applied upscale" && l.grantedMemMiB === 3 * 1024);
      }, diagnose);
      assert.ok(Date.parse(notified.ts) > requestAt, "notified after the request");
      const cg1 = await cgroup();
      assert.equal(cg1.high, notified.sizing.memoryHighBytes, "memory.high raised to the grant");
      assert.ok(cg1.high > highBytes);
      progress("monitor told of the upscale", {
        grantedMemMiB: notified.grantedMemMiB,
        memoryHighMiB: cg1.high / MiB,
      });
      const grown = await waitFor("VM status 3Gi", 120_000, async () => {
        const vm = await vmNow();
        return vm?.status?.memorySize === "3Gi" ? vm : undefined;
      }, diagnose);
      progress("VM status follows", { memorySize: grown.status.memorySize });
      // The order of §3.5 on one clock: the agent's log (host clock) and the monitor's log
      // (guest clock, shifted by the measured offset).
      const clockOffset = await guestClockOffset(ip);
      const agentPod = (await agentPodsOn(c, node))[0];
      assert.ok(agentPod !== undefined, `an autoscaler-agent pod on ${node}`);
      const agentLines = await agentLog(env, agentPod, `${ns}/${VM}`);
      const hostMs = (guestTs: string) => Date.parse(guestTs) - clockOffset.offsetMs;
      const got = agentLines.find((l) =>
        l.msg === "monitor requested upscale" && Date.parse(l.ts) >= hostMs(request.ts) - 2_000
      );
      assert.ok(got !== undefined, "the agent logged the monitor's request for this VM");
      const patched = agentLines.find((l) =>
        l.msg === "patched VirtualMachine" && Date.parse(l.ts) >= Date.parse(got.ts)
      );
      assert.ok(patched !== undefined, "the agent logged its patch after the request");
      const timeline = {
        guestClockOffsetMs: Math.round(clockOffset.offsetMs),
        offsetErrorMs: Math.round(clockOffset.errorMs),
        agentGotRequestMs: Math.round(Date.parse(got.ts) - hostMs(request.ts)),
        agentPatchedMs: Math.round(Date.parse(patched.ts) - hostMs(request.ts)),
        monitorNotifiedMs: Math.round(hostMs(notified.ts) - hostMs(request.ts)),
      };
      progress("timeline after the UpscaleRequest (host clock)", timeline);
      assert.ok(
        hostMs(notified.ts) + clockOffset.errorMs >= Date.parse(patched.ts),
        "the monitor was told after the patch",
      );

      // 3. Bounds below what the guest uses: the agent asks, the monitor refuses.
      const cgHeld = await cgroup();
      const markTs = Date.now() - 60_000; // Guest and host clocks may differ by a little.
      const deniedBefore = (await monitorLog()).filter((l) =>
        l.msg === "downscale decision" && l.decision === "deny"
      ).length;
      await ok(env, [
        "-n",
        ns,
        "annotate",
        "--overwrite",
        "virtualmachines.vm.neon.tech",
        VM,
        `autoscaling.neon.tech/bounds=${
          JSON.stringify({ min: { cpu: "250m", mem: "2Gi" }, max: { cpu: "1", mem: "2Gi" } })
        }`,
      ]);
      progress("bounds lowered to 2Gi", { anonMiB: Math.round(cgHeld.anon / MiB) });
      const denied = await waitFor("the monitor refuses the downscale", 60_000, async () => {
        const lines = (await monitorLog()).filter((l) =>
          l.msg === "downscale decision" && l.decision === "deny" && Date.parse(l.ts) > markTs
        );
        return lines.length > deniedBefore ? lines.at(-1) : undefined;
      }, diagnose);
      assert.equal(denied.targetMemMiB, 2 * 1024);
      assert.ok(denied.avgNonReclaimableMiB * MiB >= thresholdBytes - MiB, "refused on the hog");
      progress("downscale refused", {
        targetMemMiB: denied.targetMemMiB,
        avgNonReclaimableMiB: denied.avgNonReclaimableMiB,
      });
      // Give the agent time to (wrongly) patch anyway, then check the VM kept its size and runs.
      await new Promise((r) => setTimeout(r, 12_000));
      const after = await vmNow();
      assert.equal(after.spec.guest.memorySlots.use, 3, "no downscale the monitor refused");
      assert.equal(after.status.phase, "Running");
      assert.equal(after.status.podName, running.status.podName, "same runner pod");
      const cg2 = await cgroup();
      assert.equal(cg2.high, cg1.high, "the refusal changed no limit");
      assert.ok(cg2.anon >= thresholdBytes, "the hog still holds its memory");
      const refusals = (await monitorLog()).filter((l) =>
        l.msg === "downscale decision" && l.decision === "deny" && Date.parse(l.ts) > markTs
      ).length - deniedBefore;
      progress("VM kept 3Gi and runs", { refusals });
      await fetchText(`http://${ip}:${MONITOR_GUEST_DRIVER_PORT}/hog/stop`, { method: "POST" })
        .catch(() =>
          ""
        );
    } finally {
      await kubectl(env, [
        "-n",
        ns,
        "delete",
        "virtualmachines.vm.neon.tech",
        "--all",
        "--wait=false",
      ]);
      await waitFor(
        "VM gone",
        60_000,
        async () =>
          (await getVm(env, ns, VM).catch(() => undefined)) === undefined ? true : undefined,
      ).catch(
        () => undefined,
      );
      await kubectl(env, ["delete", "namespace", ns, "--wait=false"]);
      progress("cleaned up", { namespace: ns });
    }
  },
});
