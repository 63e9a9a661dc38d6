/**
 * The monitor against a REAL cgroup v2 memory controller. This host runs cgroup v1 (the v2 mount
 * has no memory controller), so the suite boots a throwaway QEMU guest (TCG, the host's Debian
 * cloud kernel, a busybox initramfs carrying the Deno runtime and the bundled monitor) where
 * `init.sh` mounts cgroup2 and creates `neon-postgres`; `guest/guest_check.ts` then plays the
 * agent in the guest and reports. Slow (a few minutes under TCG); skipped without QEMU or a kernel.
 * @module
 */
import assert from "node:assert/strict";

const KERNEL_DIR = "/boot";
const here = new URL(".", import.meta.url).pathname;
const root = new URL("../../", import.meta.url).pathname;

function findKernel(): string | undefined {
  try {
    for (const e of Deno.readDirSync(KERNEL_DIR)) {
      if (e.name.startsWith("vmlinuz-")) return `${KERNEL_DIR}/${e.name}`;
    }
  } catch { /* no /boot */ }
  return undefined;
}
function hasQemu(): boolean {
  try {
    Deno.statSync("/usr/bin/qemu-system-x86_64");
    return true;
  } catch {
    return false;
  }
}
const kernel = findKernel();

async function sh(script: string, cwd?: string): Promise<string> {
  const out = await new Deno.Command("/bin/sh", {
    args: ["-c", script],
    stdout: "piped",
    stderr: "piped",
    ...(cwd ? { cwd } : {}),
  }).output();
  if (!out.success) throw new Error(`${script}: ${new TextDecoder().decode(out.stderr)}`);
  return new TextDecoder().decode(out.stdout);
}

/** Builds the initramfs; returns its path. */
async function buildInitramfs(work: string): Promise<string> {
  const fs = `${work}/rootfs`;
  await Deno.mkdir(`${fs}/bin`, { recursive: true });
  const deno = Deno.realPathSync(Deno.execPath());
  await sh(`cp /usr/bin/busybox ${fs}/bin/busybox && cp ${deno} ${fs}/bin/deno`);
  // The Deno runtime's shared libraries and loader.
  await sh(
    `ldd ${deno} | grep -o '/[^ ]*' | while read l; do ` +
      `mkdir -p ${fs}$(dirname $l) && cp -L $l ${fs}$l; done`,
  );
  await sh(`cp ${here}/guest/init.sh ${fs}/init && chmod 755 ${fs}/init`);
  for (
    const [src, dst] of [
      ["src/monitor/main.ts", "monitor.js"],
      [`tests/monitor/guest/guest_check.ts`, "guest_check.js"],
      [`tests/monitor/guest/hog.ts`, "hog.js"],
    ]
  ) {
    await sh(`"${Deno.execPath()}" bundle -q -o ${fs}/${dst} ${src}`, root);
  }
  await sh(`find . | cpio -o -H newc --quiet > ${work}/initrd.cpio`, fs);
  return `${work}/initrd.cpio`;
}

Deno.test({
  name: "real cgroup v2 in a QEMU guest: limits written, refusal, UpscaleRequest on allocation",
  ignore: kernel === undefined || !hasQemu() || Deno.env.get("NEONVM_SKIP_QEMU") === "1",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const work = await Deno.makeTempDir({ prefix: "h6-guest-" });
    try {
      const initrd = await buildInitramfs(work);
      const qemu = new Deno.Command("qemu-system-x86_64", {
        args: [
          "-accel",
          "tcg",
          "-m",
          "2048",
          "-smp",
          "1",
          "-kernel",
          kernel!,
          "-initrd",
          initrd,
          "-append",
          "console=ttyS0 rdinit=/init panic=-1 quiet",
          "-display",
          "none",
          "-nodefaults",
          "-serial",
          "stdio",
          "-no-reboot",
        ],
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(600_000),
      });
      const out = await qemu.output();
      const console = new TextDecoder().decode(out.stdout);
      await Deno.writeTextFile(`${work}/console.log`, console);
      const line = console.split("\n").find((l) => l.startsWith("H6-RESULT "));
      assert.ok(line !== undefined, `no result from the guest:\n${console.slice(-3000)}`);
      const r = JSON.parse(line.slice("H6-RESULT ".length));
      Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(r, null, 1) + "\n"));
      assert.equal(r.error, undefined, r.error);
      const MiB = 1 << 20;
      assert.equal(r.handshake, '{"version":1}');
      // Start-up limits from MemTotal: max = MemTotal, high = max - 100 MiB (kernel rounds to pages).
      assert.ok(typeof r.initial.max === "number" && r.initial.max > 1500 * MiB);
      assert.equal(r.afterUpscale1.max, 924 * MiB);
      assert.equal(r.afterUpscale1.high, 824 * MiB);
      assert.equal(r.downscaleRefused.type, "DownscaleResult");
      assert.equal(r.downscaleRefused.Ok, false);
      assert.deepEqual(r.afterRefused, r.afterUpscale1, "a refused downscale changes nothing");
      assert.equal(r.downscaleApproved.Ok, true);
      assert.equal(r.afterApproved.max, 800 * MiB);
      assert.equal(r.afterApproved.high, 700 * MiB);
      assert.equal(r.upscaleRequest.type, "UpscaleRequest");
      assert.equal(r.upscaleRequest.id % 2, 1);
      assert.ok(r.anonAfterAlloc > 700, `anon ${r.anonAfterAlloc} MiB above the 700 MiB threshold`);
      assert.ok(
        r.requestAfterHeldMs <= 1_000,
        `UpscaleRequest ${r.requestAfterHeldMs} ms after the allocation completed`,
      );
      assert.equal(r.monitorExit, 0);
    } finally {
      if (Deno.env.get("H6_KEEP_GUEST") !== "1") await Deno.remove(work, { recursive: true });
    }
  },
});
