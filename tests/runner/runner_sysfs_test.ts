/**
 * neonvm-runner in SysfsScaling mode against real QEMU (TCG): all vCPUs are plugged at boot but
 * the guest kernel starts with `maxcpus=ceil(min)`; the guest gets its address from the runner's
 * dnsmasq over the bridge/tap; `/cpu_change` goes through the daemon API in the guest and the
 * guest onlines/offlines CPUs. The test guest answers the daemon's CPU API with a busybox-shell
 * stand-in (it has no Deno runtime); the real neonvmd (src/daemon) is tested on a fake sysfs.
 * @module
 */
import assert from "node:assert/strict";
import { connectQmp } from "../../src/lib/qmp/client.ts";
import { countPluggedCpus } from "../../src/lib/qmp/commands.ts";
import { canRunRealQemu, poll, startRunner } from "./_harness.ts";

Deno.test({
  name: "SysfsScaling: all vCPUs present, guest onlines/offlines them via /cpu_change",
  ignore: !canRunRealQemu(),
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    await using r = await startRunner({
      cpuScalingMode: "SysfsScaling",
      guest: { cpus: { min: 1, max: 2, use: 1 }, memorySlots: { min: 1, max: 1, use: 1 } },
    });
    await r.waitForReport((x) => x.cpusOnline === 1, 300_000);
    const api = (path: string, init?: RequestInit) => fetch(`${r.apiBase}${path}`, init);
    // The shell stand-in daemon is slow under TCG: retry a read that hit the 1 s daemon timeout.
    const currentCpus = () =>
      poll(
        async () => {
          const res = await api("/cpu_current");
          if (res.status !== 200) {
            await res.body?.cancel();
            return undefined;
          }
          return await res.json();
        },
        20_000,
        "/cpu_current",
      );

    await t.step("QEMU has every vCPU plugged; the guest runs ceil(min) of them", async () => {
      const qmp = await connectQmp(r.qmp, { timeoutMs: 5000 });
      try {
        assert.equal(await countPluggedCpus(qmp), 2);
      } finally {
        await qmp.close();
      }
      assert.match(r.console(), /maxcpus=1/);
    });

    await t.step(
      "guest gets 169.254.254.254 from the runner's dnsmasq; /ready turns 200",
      async () => {
        await r.waitForConsole(/neonvm-guest: dhcp bound ip=169\.254\.254\.254/, 240_000);
        await poll(
          async () => {
            const res = await api("/ready");
            await res.body?.cancel();
            return res.status === 200 ? true : undefined;
          },
          30_000,
          "/ready",
        );
        assert.deepEqual(await (await api("/cpu_current")).json(), { VCPUs: 1 });
      },
    );

    await t.step("/cpu_change 2 → the guest onlines CPU 1", async () => {
      const res = await api("/cpu_change", { method: "POST", body: '{"VCPUs":2}' });
      assert.equal(res.status, 200, await res.text());
      await r.waitForReport((x) => x.cpusOnline === 2, 30_000);
      assert.deepEqual(await currentCpus(), { VCPUs: 2 });
    });

    await t.step("bad body → 400 and the guest keeps 2 CPUs", async () => {
      const res = await api("/cpu_change", { method: "POST", body: '{"VCPUs":"x"}' });
      await res.body?.cancel();
      assert.equal(res.status, 400);
      assert.deepEqual(await currentCpus(), { VCPUs: 2 });
      assert.equal(r.report()?.cpusOnline, 2);
    });

    await t.step("/cpu_change 500m → the guest offlines back to 1 CPU", async () => {
      const res = await api("/cpu_change", { method: "POST", body: '{"VCPUs":"500m"}' });
      assert.equal(res.status, 200, await res.text());
      await r.waitForReport((x) => x.cpusOnline === 1, 30_000);
      assert.deepEqual(await currentCpus(), { VCPUs: "500m" });
    });

    await t.step("SIGTERM → clean power-off", async () => {
      r.signal("SIGTERM");
      assert.equal((await r.exited).code, 0);
    });
  },
});
