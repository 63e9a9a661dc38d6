/**
 * The runner ↔ guest contract for disks (reference §6.2/§6.3): a VM spec with swap, an emptyDisk
 * with quotas, a tmpfs disk, sysctls, command and env goes through the runner's own disk planner
 * and image creation (src/runner), and a vm-builder image boots with exactly those drives; the
 * guest's init must run the runner's mounts.sh with the shipped blkid/tune2fs/mkswap, apply the
 * sysctls, and the workload (root here) must see swap, /data (ext4, writable, project quota set
 * with the shipped setquota) and /scratch (tmpfs).
 */
import assert from "node:assert/strict";
import { VirtualMachineSpecSchema } from "../../src/api/virtualmachine.ts";
import { driveArg, planDisks } from "../../src/runner/core/disks.ts";
import { runnerPaths } from "../../src/runner/core/paths.ts";
import { createDiskImage, makeRuntimeIso } from "../../src/runner/io/disks.ts";
import { writeLayoutFromDir } from "../../vm-builder/io/oci_layout.ts";
import { bootGuest, canBoot, extractDisk, waitFor } from "./_qemu.ts";

const ROOT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const CACHE = Deno.env.get("NEONVM_CACHE") ?? "/var/cache/neonvm-ts";

const WORKLOAD = [
  "mkdir -p /tmp/www",
  "{ tail -n +2 /proc/swaps | wc -l; grep -c ' /data ext4 ' /proc/mounts; " +
  "grep -c ' /scratch tmpfs ' /proc/mounts; cat /proc/sys/vm/swappiness; echo \"$GREETING\"; " +
  "echo x > /data/f && echo data-writable; " +
  "/neonvm/bin/set-disk-quota 1024 /data && echo quota-set; } > /tmp/www/info 2>&1",
  "exec /bin/busybox httpd -f -p 8080 -h /tmp/www",
].join("; ");

Deno.test({
  name: "runner disk plan (swap, emptyDisk with quotas, tmpfs, sysctl) works in a built guest",
  ignore: !(await canBoot()),
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "vmb-disks-", dir: CACHE });
    try {
      const rootfs = `${dir}/rootfs`;
      for (const d of ["bin", "etc", "tmp"]) {
        await Deno.mkdir(`${rootfs}/${d}`, { recursive: true });
      }
      await Deno.copyFile("/usr/bin/busybox", `${rootfs}/bin/busybox`);
      await Deno.chmod(`${rootfs}/bin/busybox`, 0o755);
      await Deno.symlink("busybox", `${rootfs}/bin/sh`);
      await Deno.writeTextFile(`${rootfs}/etc/passwd`, "root:x:0:0:root:/root:/bin/sh\n");
      await writeLayoutFromDir(rootfs, `${dir}/layout`, { env: ["PATH=/bin"], cmd: ["/bin/sh"] });
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          `${ROOT}/vm-builder/main.ts`,
          "build",
          "--src",
          `${dir}/layout`,
          "--no-deno",
          "--no-node-exporter",
          "--out",
          `${dir}/img.tar`,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr).slice(-2000));

      const paths = runnerPaths(`${dir}/vm`);
      await Deno.mkdir(paths.imagesDir, { recursive: true });
      await extractDisk(`${dir}/img.tar`, paths.rootDisk, dir);
      const spec = VirtualMachineSpecSchema.parse({
        guest: {
          cpus: { min: 1, max: 2, use: 1 },
          memorySlotSize: "512Mi",
          memorySlots: { min: 2, max: 2, use: 2 },
          rootDisk: { image: "vmb-disks:1" },
          command: ["/bin/sh", "-c", WORKLOAD],
          env: [{ name: "GREETING", value: "from the runner" }],
          settings: { swap: "128Mi", sysctl: ["vm.swappiness=13"] },
        },
        disks: [
          { name: "data", mountPath: "/data", emptyDisk: { size: "256Mi", enableQuotas: true } },
          { name: "scratch", mountPath: "/scratch", tmpfs: { size: "32Mi" } },
        ],
      });
      const plan = planDisks({ spec, paths, diskCacheSettings: "cache=unsafe", sshKeys: false });
      for (const task of plan.tasks) await createDiskImage(task);
      await makeRuntimeIso(plan.runtimeFiles, paths.runtimeIso);

      await using guest = await bootGuest({
        disk: paths.rootDisk,
        work: dir,
        runtimeFiles: {},
        drives: plan.drives.map((d, i) => driveArg(d, i === 0 ? 0 : undefined)),
        guestPorts: [8080],
      });
      const info = await waitFor("workload on 8080", 240_000, async () => {
        const res = await fetch(`http://127.0.0.1:${guest.ports.get(8080)}/info`, {
          signal: AbortSignal.timeout(3000),
        });
        return res.ok ? await res.text() : (await res.body?.cancel(), undefined);
      });
      assert.equal(
        info,
        "1\n1\n1\n13\nfrom the runner\ndata-writable\nquota-set\n",
        guest.consoleText().slice(-4000),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
