/**
 * Multi-process agent test, no cluster: the real agent (src/agent/main.ts) and the real vm-monitor
 * (src/monitor/main.ts, on a fake cgroup directory) as processes, with a fake apiserver, a fake
 * scheduler and a fake metrics exporter served from this test process over loopback.
 * Checks that a memory upscale requested by the monitor flows through to a VirtualMachine patch,
 * and that a downscale the monitor refuses is retried later and applied once memory frees up.
 * Runs only on loopback; bounded to ~90 s.
 */
import assert from "node:assert/strict";
import { FakeApiServer, fakeKubeconfig } from "../../src/lib/k8s/_fake_apiserver.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const p = (l.addr as Deno.NetAddr).port;
  l.close();
  return p;
}

async function waitFor<T>(
  what: string,
  fn: () => T | undefined | Promise<T | undefined>,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function spawn(args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-check", ...args],
    cwd: ROOT,
    stdout: "null",
    stderr: "piped",
  }).spawn();
}

async function drain(p: Deno.ChildProcess, path: string): Promise<void> {
  using f = await Deno.open(path, { write: true, create: true, truncate: true });
  // Written chunk by chunk so the log can be read while the process runs.
  for await (const chunk of p.stderr) await f.write(chunk);
}

Deno.test({
  name:
    "agent + real vm-monitor: requested memory upscale is patched; refused downscale is retried",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "agent-test-" });
    const ports = {
      monitor: freePort(),
      metrics: freePort(),
      scheduler: freePort(),
      agentMetrics: freePort(),
      agentVmMetrics: freePort(),
      dump: freePort(),
    };

    // Fake cgroup v2 directory and meminfo for the monitor: a 1 GiB guest.
    const cg = `${tmp}/cgroup`;
    await Deno.mkdir(`${cg}/neon-postgres`, { recursive: true });
    await Deno.writeTextFile(`${cg}/cgroup.controllers`, "cpu memory pids\n");
    const setAnon = async (bytes: number) => {
      await Deno.writeTextFile(
        `${cg}/neon-postgres/memory.stat.tmp`,
        `anon ${bytes}\nfile 0\nactive_anon ${bytes}\ninactive_anon 0\n`,
      );
      await Deno.rename(`${cg}/neon-postgres/memory.stat.tmp`, `${cg}/neon-postgres/memory.stat`);
      await Deno.writeTextFile(`${cg}/neon-postgres/memory.current`, `${bytes}\n`);
    };
    await setAnon(50 * MiB);
    await Deno.writeTextFile(`${tmp}/meminfo`, `MemTotal:        ${GiB / 1024} kB\n`);

    // Fake apiserver with the VM and a scheduler pod.
    await using api = new FakeApiServer();
    api.seed("/api/v1/pods", {
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name: "autoscale-scheduler-0",
        namespace: "kube-system",
        labels: { name: "autoscale-scheduler" },
        creationTimestamp: "2026-01-01T00:00:00Z",
      },
      spec: { containers: [{ name: "s" }] },
      status: { podIP: "127.0.0.1", conditions: [{ type: "Ready", status: "True" }] },
    });
    const vmPath = "/apis/vm.neon.tech/v1/virtualmachines";
    api.seed(vmPath, {
      apiVersion: "vm.neon.tech/v1",
      kind: "VirtualMachine",
      metadata: {
        name: "vm1",
        namespace: "default",
        labels: { "autoscaling.neon.tech/enabled": "true", "neon/endpoint-id": "ep-1" },
        annotations: { "autoscaling.neon.tech/billing-endpoint-id": "ep-1" },
      },
      spec: {
        schedulerName: "autoscale-scheduler",
        guest: {
          cpus: { min: "250m", max: 1, use: "250m" },
          memorySlotSize: "1Gi",
          memorySlots: { min: 1, max: 4, use: 1 },
          rootDisk: { image: "img" },
        },
      },
      status: {
        phase: "Running",
        node: "n1",
        podIP: "127.0.0.1",
        podName: "vm1-pod",
        cpus: "250m",
      },
    });
    const vmUse = () => {
      const o = api.object(vmPath, "default", "vm1") as unknown as {
        spec: { guest: { memorySlots: { use: number }; cpus: { use: unknown } } };
      };
      return o.spec.guest.memorySlots.use;
    };

    // Fake scheduler: grants everything asked for.
    const permitRequests: { resources: { mem: unknown } }[] = [];
    const sched = Deno.serve(
      { hostname: "127.0.0.1", port: ports.scheduler, onListen: () => {} },
      async (req) => {
        const body = await req.json();
        permitRequests.push(body);
        return Response.json({ permit: body.resources });
      },
    );
    // Fake metrics exporter: low load and low memory, so only the monitor asks for more.
    const metricsText = [
      "# TYPE host_load1 gauge",
      "host_load1 0.05",
      "# TYPE host_load5 gauge",
      "host_load5 0.05",
      "# TYPE host_memory_total_bytes gauge",
      `host_memory_total_bytes ${GiB}`,
      "# TYPE host_memory_available_bytes gauge",
      `host_memory_available_bytes ${GiB - 100 * MiB}`,
      "# TYPE host_memory_cached_bytes gauge",
      "host_memory_cached_bytes 0",
      "",
    ].join("\n");
    const exporter = Deno.serve(
      { hostname: "127.0.0.1", port: ports.metrics, onListen: () => {} },
      () => new Response(metricsText),
    );

    await Deno.writeTextFile(
      `${tmp}/kubeconfig`,
      fakeKubeconfig(api.url),
    );
    await Deno.writeTextFile(
      `${tmp}/config.json`,
      JSON.stringify({
        monitor: {
          serverPort: ports.monitor,
          requestedUpscaleValidSeconds: 2,
          retryDeniedDownscaleSeconds: 2,
        },
        metrics: { system: { port: ports.metrics, secondsBetweenRequests: 1 } },
        scheduler: { requestPort: ports.scheduler },
        dumpState: { port: ports.dump, timeoutSeconds: 5 },
        billing: {
          collectEverySeconds: 1,
          accumulateEverySeconds: 3,
          clients: {
            file: { path: `${tmp}/billing.jsonl`, pushEverySeconds: 1, maxBatchSize: 100 },
          },
        },
        scalingEvents: {
          regionName: "test",
          clients: {
            file: { path: `${tmp}/events.jsonl`, pushEverySeconds: 1, maxBatchSize: 100 },
          },
        },
      }),
    );

    const monitor = spawn([
      "src/monitor/main.ts",
      `--addr=127.0.0.1:${ports.monitor}`,
      `--cgroup-root=${cg}`,
      "--cgroup=neon-postgres",
      "--cgroup-limits=false",
      `--meminfo=${tmp}/meminfo`,
    ]);
    const monitorLog = drain(monitor, `${tmp}/monitor.log`);
    const agent = spawn([
      "src/agent/main.ts",
      `--config=${tmp}/config.json`,
      "--node-name=n1",
      "--pod-ip=127.0.0.1",
      `--kubeconfig=${tmp}/kubeconfig`,
      "--listen-host=127.0.0.1",
      `--metrics-port=${ports.agentMetrics}`,
      `--vm-metrics-port=${ports.agentVmMetrics}`,
      "--log-level=debug",
    ]);
    const agentLog = drain(agent, `${tmp}/agent.log`);
    const agentMetric = async (re: RegExp): Promise<number> => {
      try {
        const text = await (await fetch(`http://127.0.0.1:${ports.agentMetrics}/metrics`)).text();
        const m = re.exec(text);
        return m ? Number(m[1]) : 0;
      } catch {
        return 0; // Not listening yet.
      }
    };
    try {
      // The agent connects to the monitor and reports usage to the scheduler.
      await waitFor("agent to connect to the monitor", async () => {
        const dump = await fetch(`http://127.0.0.1:${ports.dump}/`).then((r) => r.json()).catch(
          () => undefined,
        );
        return dump?.pods?.[0]?.runner?.monitor?.connected === true ? true : undefined;
      }, 40_000);
      assert.equal(vmUse(), 1);

      // Fast allocation inside the guest: 950 MiB of anon memory in a 1 GiB VM.
      await setAnon(950 * MiB);
      await waitFor("memory upscale patch", () => (vmUse() === 2 ? true : undefined), 20_000);
      assert.ok(
        permitRequests.some((r) => r.resources.mem === "2Gi"),
        "the scheduler was asked for 2Gi",
      );
      const log = await Deno.readTextFile(`${tmp}/agent.log`);
      assert.match(log, /"msg":"monitor requested upscale"/, "the upscale came from the monitor");

      // Metrics say 1 CU, but the monitor refuses (memory still in use): retried at least twice.
      await waitFor(
        "two refused downscales",
        async () =>
          (await agentMetric(
              /autoscaling_agent_monitor_outbound_requests_total\{endpoint="DownscaleRequest",code="denied"\} (\d+)/,
            )) >= 2
            ? true
            : undefined,
        20_000,
      );
      assert.equal(vmUse(), 2, "no downscale while the monitor refuses");

      // Memory frees up: the next retry is approved and the VM is patched back down.
      await setAnon(50 * MiB);
      await waitFor("downscale patch", () => (vmUse() === 1 ? true : undefined), 20_000);

      // Billing events were written for the VM's endpoint.
      await waitFor("billing events", async () => {
        const text = await Deno.readTextFile(`${tmp}/billing.jsonl`).catch(() => "");
        return /"metric":"effective_compute_seconds".*"endpoint_id":"ep-1"/.test(text)
          ? true
          : undefined;
      }, 5_000);
      // Scaling events were written as JSON lines.
      await waitFor("scaling events", async () => {
        const text = await Deno.readTextFile(`${tmp}/events.jsonl`).catch(() => "");
        return text.includes('"kind":"actual"') ? true : undefined;
      }, 5_000);
    } catch (e) {
      const tail = async (p: string) => (await Deno.readTextFile(p).catch(() => "")).slice(-4000);
      throw new Error(
        `${e instanceof Error ? e.message : e}\n--- agent log ---\n${await tail(
          `${tmp}/agent.log`,
        )}\n--- monitor log ---\n${await tail(`${tmp}/monitor.log`)}`,
      );
    } finally {
      agent.kill("SIGTERM");
      monitor.kill("SIGTERM");
      await Promise.all([agent.status, monitor.status, agentLog, monitorLog]);
      await sched.shutdown();
      await exporter.shutdown();
    }
  },
});
