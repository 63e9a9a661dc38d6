/**
 * Resize latency on real QEMU (TCG): time from issuing the QMP command to the guest seeing the
 * change (its console reporter, polling every 100 ms), for +1 vCPU, −1 vCPU, +1 GiB and −1 GiB of
 * virtio-mem, `--runs N` samples each (default 10), one guest boot. Prints p50/p95/min/max.
 * vCPUs are added N times in a row and then removed N times (QEMU 7.2 under TCG crashes when a
 * vCPU is added after one was removed, so add/remove cannot alternate); memory alternates.
 * Usage: deno run -A bench/runner_resize_bench.ts [--runs 10]
 * Needs root, qemu-system-x86_64, genisoimage and dnsmasq (see tests/runner/_harness.ts).
 * @module
 */
import { parseArgs } from "node:util";
import { connectQmp } from "../src/lib/qmp/client.ts";
import {
  countPluggedCpus,
  plugCpu,
  setVirtioMemRequestedSize,
  unplugCpu,
} from "../src/lib/qmp/commands.ts";
import { canRunRealQemu, startRunner } from "../tests/runner/_harness.ts";

const GiB = 1024 ** 3;
const out = (s: string) => Deno.stdout.writeSync(new TextEncoder().encode(s + "\n"));

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { runs: { type: "string", default: "10" } },
  });
  const runs = Math.max(1, Number(values.runs));
  if (!canRunRealQemu()) {
    out("runner_resize_bench: needs root, QEMU, genisoimage and dnsmasq; skipped");
    Deno.exit(0);
  }
  await using r = await startRunner({
    guest: {
      cpus: { min: 1, max: runs + 1, use: 1 },
      memorySlots: { min: 1, max: 2, use: 1 },
    },
  });
  const t0 = performance.now();
  await r.waitForReport((x) => x.cpusOnline === 1, 300_000);
  const bootMs = performance.now() - t0;
  const qmp = await connectQmp(r.qmp, { timeoutMs: 5000 });
  const samples: Record<string, number[]> = {
    "+1 vCPU": [],
    "-1 vCPU": [],
    "+1 GiB": [],
    "-1 GiB": [],
  };
  const baseKib = r.report()!.memTotalKib;
  const timed = async (name: string, act: () => Promise<unknown>, seen: () => Promise<unknown>) => {
    const start = performance.now();
    await act();
    await seen();
    samples[name]!.push(performance.now() - start);
  };
  try {
    for (let i = 0; i < runs; i++) {
      await timed(
        "+1 GiB",
        () => setVirtioMemRequestedSize(qmp, GiB),
        () => r.waitForReport((x) => x.memTotalKib - baseKib > 0.95 * GiB / 1024, 120_000),
      );
      await timed(
        "-1 GiB",
        () => setVirtioMemRequestedSize(qmp, 0),
        () => r.waitForReport((x) => x.memTotalKib - baseKib < 0.05 * GiB / 1024, 300_000),
      );
    }
    for (let i = 0; i < runs; i++) {
      await timed(
        "+1 vCPU",
        () => plugCpu(qmp),
        () => r.waitForReport((x) => x.cpusOnline === i + 2, 60_000),
      );
    }
    for (let i = 0; i < runs; i++) {
      await timed(
        "-1 vCPU",
        () => unplugCpu(qmp),
        () => r.waitForReport((x) => x.cpusOnline === runs - i, 60_000),
      );
      // QEMU frees the slot after the guest's ACPI eject; wait so the next unplug picks anew.
      for (let k = 0; k < 200 && (await countPluggedCpus(qmp)) !== runs - i; k++) {
        await new Promise((res) => setTimeout(res, 50));
      }
    }
  } catch (error) {
    out(`runner_resize_bench failed: ${String(error)}`);
    out(`--- console tail ---\n${r.console().slice(-3000)}`);
    out(`--- runner log tail ---\n${r.logs().slice(-3000)}`);
    throw error;
  } finally {
    await qmp.close();
  }
  r.signal("SIGTERM");
  await r.exited;
  out(
    `runner_resize_bench: QMP command -> guest sees it; QEMU TCG on a shared 2-core box; ` +
      `guest boot ${(bootMs / 1000).toFixed(1)} s; ${runs} samples each`,
  );
  out("| action  | runs | p50 ms | p95 ms | min ms | max ms |");
  out("|---------|-----:|-------:|-------:|-------:|-------:|");
  for (const [name, xs] of Object.entries(samples)) {
    const s = [...xs].sort((a, b) => a - b);
    const f = (v: number) => v.toFixed(0).padStart(6);
    out(
      `| ${name.padEnd(7)} | ${String(s.length).padStart(4)} | ${f(percentile(s, 50))} | ${
        f(percentile(s, 95))
      } | ${f(s[0] ?? NaN)} | ${f(s.at(-1) ?? NaN)} |`,
    );
  }
}
