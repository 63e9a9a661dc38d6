/**
 * neonvm-runner against real QEMU (TCG), no Kubernetes: one guest boot in a private network
 * namespace, then vCPU hot-add/remove and virtio-mem plug/unplug over QMP as the controller does
 * them, the runtime disk (env, command, sysctls, configMap/emptyDisk/tmpfs mounts), the runner
 * API (bad body → 400 and nothing changes, cgroup quota follows /cpu_change) and SIGTERM → ACPI
 * power-off → exit status 0.
 * @module
 */
import assert from "node:assert/strict";
import { connectQmp } from "../../src/lib/qmp/client.ts";
import {
  countPluggedCpus,
  plugCpu,
  queryKvm,
  queryMemorySizeSummary,
  queryStatus,
  setVirtioMemRequestedSize,
  totalMemoryBytes,
  unplugCpu,
} from "../../src/lib/qmp/commands.ts";
import { canRunRealQemu, poll, startRunner } from "./_harness.ts";

const GiB = 1024 ** 3;
const note = (s: string) => Deno.stderr.writeSync(new TextEncoder().encode(s + "\n"));
const KiB = 1024;

Deno.test({
  name: "runner boots the test guest; QMP CPU/memory hotplug; runtime disk; API; SIGTERM",
  ignore: !canRunRealQemu(),
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    await using r = await startRunner({
      manageCgroup: true,
      guest: {
        env: [{ name: "GREETING", value: "hello 'vm'" }],
        command: ["sh", "-c"],
        args: [
          "echo neonvm-test: env=$GREETING swappiness=$(cat /proc/sys/vm/swappiness) " +
          "conf=$(cat /etc/app/greeting) tmpfs=$(grep -c ' /scratch tmpfs' /proc/mounts) " +
          "data=$(grep -c ' /data ext4' /proc/mounts)",
        ],
        settings: { sysctl: ["vm.swappiness=17"] },
      },
      spec: {
        enableNetworkMonitoring: true,
        disks: [
          { name: "conf", mountPath: "/etc/app", configMap: { name: "app" } },
          { name: "data", mountPath: "/data", emptyDisk: { size: "64Mi" } },
          { name: "scratch", mountPath: "/scratch", tmpfs: { size: "16Mi" } },
        ],
      },
      mounts: { "/etc/app/greeting": "hi-from-configmap" },
    });
    const t0 = Date.now();
    const booted = await r.waitForReport((x) => x.cpusOnline === 1, 300_000);
    const bootMs = Date.now() - t0;
    note(`guest booted in ${bootMs} ms (TCG), MemTotal ${booted.memTotalKib} KiB`);
    assert.match(r.logs(), /"accelerator":"tcg"/);

    await t.step("runtime disk: env, command/args, sysctls, mounts", async () => {
      // Wait for the whole line: the serial console arrives in arbitrary chunks.
      const m = await r.waitForConsole(/neonvm-test: ([^\r\n]*)\r?\n/, 180_000);
      assert.equal(
        m[1]!.trim(),
        "env=hello 'vm' swappiness=17 conf=hi-from-configmap tmpfs=1 data=1",
      );
      assert.match(r.console(), /neonvm-guest: mounts ok/);
      assert.match(r.console(), /neonvm-guest: booted hostname=vm-/);
    });

    const qmp = await connectQmp(r.qmp, { timeoutMs: 5000 });
    try {
      await t.step("vCPU hot-add over QMP: the guest onlines the new CPU", async () => {
        assert.equal((await queryStatus(qmp)).status, "running");
        assert.deepEqual((await queryKvm(qmp)).enabled, false, "TCG");
        assert.equal(await countPluggedCpus(qmp), 1);
        const slot = await plugCpu(qmp);
        assert.equal(slot?.props["core-id"], 1);
        await r.waitForReport((x) => x.cpusOnline === 2, 60_000);
        assert.equal(await countPluggedCpus(qmp), 2);
      });

      const baseKib = r.report()!.memTotalKib;
      await t.step("virtio-mem +1 GiB: guest MemTotal grows by ~1 GiB", async () => {
        await setVirtioMemRequestedSize(qmp, GiB);
        const grown = await r.waitForReport(
          (x) => x.memTotalKib - baseKib > 0.95 * GiB / KiB,
          90_000,
        );
        assert.ok(grown.memTotalKib - baseKib <= GiB / KiB, "no more than requested");
        const sum = await poll(
          async () => {
            const s = await queryMemorySizeSummary(qmp);
            return totalMemoryBytes(s) === 2 * GiB ? s : undefined;
          },
          30_000,
          "QEMU to report 2 GiB",
        );
        assert.equal(sum["plugged-memory"], GiB);
      });

      await t.step("virtio-mem back to 0: guest MemTotal shrinks back", async () => {
        await setVirtioMemRequestedSize(qmp, 0);
        await r.waitForReport((x) => x.memTotalKib - baseKib < 0.05 * GiB / KiB, 120_000);
        await poll(
          async () => {
            const s = await queryMemorySizeSummary(qmp);
            return s["plugged-memory"] === 0 ? true : undefined;
          },
          60_000,
          "QEMU to report no plugged memory",
        );
      });

      await t.step("vCPU hot-remove: the guest drops back to one CPU", async () => {
        const removed = await unplugCpu(qmp);
        assert.equal(removed?.["qom-path"], "/machine/peripheral/cpu1");
        await r.waitForReport((x) => x.cpusOnline === 1, 60_000);
        await poll(
          async () => (await countPluggedCpus(qmp)) === 1 ? true : undefined,
          30_000,
          "slot freed",
        );
      });
    } finally {
      await qmp.close();
    }

    await t.step(
      "runner API: bad body is 400 and changes nothing; good body updates cgroup",
      async () => {
        const quota = () => Deno.readTextFileSync(`${r.cgroupDir}/cpu.cfs_quota_us`).trim();
        assert.equal(quota(), "400000", "initial quota = use (1 CPU) x 4");
        const cur = async () => await (await fetch(`${r.apiBase}/cpu_current`)).json();
        assert.deepEqual(await cur(), { VCPUs: 1 });
        for (const body of ["{", '{"VCPUs":"lots"}', '{"vcpus":2}', '{"VCPUs":3}']) {
          const res = await fetch(`${r.apiBase}/cpu_change`, { method: "POST", body });
          await res.body?.cancel();
          assert.equal(res.status, 400, body);
        }
        assert.deepEqual(await cur(), { VCPUs: 1 });
        assert.equal(quota(), "400000");
        const ok = await fetch(`${r.apiBase}/cpu_change`, {
          method: "POST",
          body: JSON.stringify({ VCPUs: "1500m" }),
        });
        await ok.body?.cancel();
        assert.equal(ok.status, 200);
        assert.deepEqual(await cur(), { VCPUs: "1500m" });
        assert.equal(quota(), "600000");
        const metrics = await (await fetch(`${r.apiBase}/metrics`)).text();
        assert.match(metrics, /\nrunner_vm_ingress_bytes_total \d+\n/);
        assert.match(metrics, /\nrunner_vm_egress_bytes_total \d+\n/);
        assert.match(metrics, /\nrunner_vm_network_fetch_errors_total 0\n/);
        const ready = await fetch(`${r.apiBase}/ready`);
        await ready.body?.cancel();
        assert.equal(ready.status, 200);
      },
    );

    await t.step("SIGTERM: ACPI power-down, clean exit status 0", async () => {
      const t1 = Date.now();
      r.signal("SIGTERM");
      const st = await r.exited;
      note(`runner exited ${st.code} ${Date.now() - t1} ms after SIGTERM`);
      assert.equal(st.code, 0);
      assert.match(r.console(), /neonvm-guest: power button/);
      assert.match(r.logs(), /"outcome":"clean-shutdown"/);
    });
  },
});
