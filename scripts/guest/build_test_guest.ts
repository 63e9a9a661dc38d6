/**
 * Builds the minimal test guest into /var/cache/neonvm-ts/guest/ (or `--out DIR`):
 *   vmlinuz          the installed Debian cloud kernel
 *   initrd.img       busybox initramfs that loads the virtio / virtio-mem / ACPI modules and
 *                    switches to /dev/vda (`init=` from the kernel command line)
 *   disk.qcow2       ext4 root disk labelled `vmroot`: busybox init, runtime-disk handling,
 *                    CPU hot-add onlining, ACPI power button, console reporter
 *   test-guest.tar   image archive `localhost/neonvm-ts/test-guest:dev` holding `/disk.qcow2` plus
 *                    busybox `sh`, `mv`, `chown`, `cp`, `sysctl` (for the runner pod's init container),
 *                    in the docker-archive format `ctr images import` takes (as the runtime image)
 * Usage: deno run -A scripts/guest/build_test_guest.ts [--out DIR] [--kernel PATH] [--force]
 * Must not touch anything outside the output directory and its own temp directory.
 * @module
 */
import { parseArgs } from "node:util";
import { DETERMINISTIC_TAR, writeDockerArchive } from "../images/docker_archive.ts";
import { exists, run, sha256File, writeStdout } from "../cluster/exec.ts";
import {
  GUEST_MODULES,
  guestBlkidShim,
  guestInittab,
  guestNeonvmdStandIn,
  guestPowerButtonAction,
  guestReporter,
  guestUdhcpcScript,
  guestUeventHook,
  guestVminit,
  guestVmshutdown,
  guestVmstart,
  initramfsInit,
} from "./guest_files.ts";

/** Default output directory. */
export const DEFAULT_GUEST_DIR = "/var/cache/neonvm-ts/guest";
/** Image reference of the packaged test guest. */
export const TEST_GUEST_IMAGE = "localhost/neonvm-ts/test-guest:dev";

/**
 * Additions for a guest variant (scripts/guest/monitor_guest.ts): extra root-disk content, a larger
 * disk, another image reference. Without them the build is the plain test guest.
 */
export interface GuestVariant {
  /** Adds files to the root file system tree (directory `root`) before the disk is made. */
  addToRoot?: (root: string) => Promise<void>;
  /** Root disk size in MiB (default 64). */
  diskMiB?: number;
  /** Image reference of the archive (default {@linkcode TEST_GUEST_IMAGE}). */
  image?: string;
}

/** Paths of a built guest. */
export interface TestGuest {
  /** Kernel. */
  kernelPath: string;
  /** Initramfs. */
  initrdPath: string;
  /** qcow2 root disk. */
  diskPath: string;
  /** Image archive for `ctr images import`. */
  imageArchivePath: string;
}

/** Where a guest built into `dir` lives. */
export function testGuestPaths(dir = DEFAULT_GUEST_DIR): TestGuest {
  return {
    kernelPath: `${dir}/vmlinuz`,
    initrdPath: `${dir}/initrd.img`,
    diskPath: `${dir}/disk.qcow2`,
    imageArchivePath: `${dir}/test-guest.tar`,
  };
}

async function findKernel(): Promise<{ path: string; version: string }> {
  const found: string[] = [];
  for await (const e of Deno.readDir("/boot")) {
    if (/^vmlinuz-.*-cloud-amd64$/.test(e.name)) found.push(e.name);
  }
  found.sort();
  const name = found.at(-1);
  if (name === undefined) {
    throw new Error("No /boot/vmlinuz-*-cloud-amd64: install linux-image-cloud-amd64");
  }
  return { path: `/boot/${name}`, version: name.slice("vmlinuz-".length) };
}

async function writeExec(path: string, text: string): Promise<void> {
  await Deno.writeTextFile(path, text);
  await Deno.chmod(path, 0o755);
}

async function busyboxApplets(busybox: string): Promise<string[]> {
  const r = await run([busybox, "--list"], { step: "guest.busybox-list" });
  return r.stdout.split("\n").map((s) => s.trim()).filter((s) => s !== "" && s !== "busybox");
}

async function buildInitramfs(work: string, out: string, kernelVersion: string): Promise<void> {
  const root = `${work}/initramfs`;
  await Deno.mkdir(`${root}/bin`, { recursive: true });
  for (const d of ["dev", "proc", "sys", "newroot", "lib/modules"]) {
    await Deno.mkdir(`${root}/${d}`, { recursive: true });
  }
  await Deno.copyFile("/bin/busybox", `${root}/bin/busybox`);
  await Deno.chmod(`${root}/bin/busybox`, 0o755);
  for (const m of GUEST_MODULES) {
    const r = await run(["modinfo", "-k", kernelVersion, "-n", m], { step: "guest.modinfo" });
    const src = r.stdout.trim();
    await Deno.copyFile(src, `${root}/lib/modules/${m}.ko`);
  }
  await writeExec(`${root}/init`, initramfsInit(GUEST_MODULES));
  await run([
    "sh",
    "-c",
    `cd '${root}' && find . | sort | cpio -o -H newc --quiet | gzip -9 > '${out}.tmp' && mv '${out}.tmp' '${out}'`,
  ], { step: "guest.initramfs" });
}

async function buildRootDisk(work: string, out: string, variant: GuestVariant): Promise<void> {
  const root = `${work}/rootfs`;
  for (
    const d of [
      "neonvm/bin",
      "neonvm/runtime",
      "neonvm/acpi/PWRF",
      "etc",
      "dev",
      "proc",
      "sys",
      "tmp",
      "run",
      "mnt",
      "root",
      "bin",
      "var/log",
    ]
  ) await Deno.mkdir(`${root}/${d}`, { recursive: true });
  await Deno.copyFile("/bin/busybox", `${root}/neonvm/bin/busybox`);
  await Deno.chmod(`${root}/neonvm/bin/busybox`, 0o755);
  for (const applet of await busyboxApplets("/bin/busybox")) {
    await Deno.symlink("busybox", `${root}/neonvm/bin/${applet}`);
  }
  // Workloads say `sh`, `echo`...: make the usual paths work too.
  for (const a of ["sh", "echo", "cat", "sleep", "ls", "env"]) {
    await Deno.symlink(`/neonvm/bin/busybox`, `${root}/bin/${a}`);
  }
  await Deno.writeTextFile(`${root}/etc/inittab`, guestInittab());
  await Deno.writeTextFile(`${root}/etc/passwd`, "root:x:0:0:root:/root:/bin/sh\n");
  await Deno.writeTextFile(`${root}/etc/group`, "root:x:0:\n");
  await Deno.writeTextFile(`${root}/etc/hostname`, "neonvm-test-guest\n");
  await writeExec(`${root}/neonvm/bin/vminit`, guestVminit());
  await writeExec(`${root}/neonvm/bin/vmstart`, guestVmstart());
  await writeExec(`${root}/neonvm/bin/vmshutdown`, guestVmshutdown());
  await writeExec(`${root}/neonvm/bin/reporter`, guestReporter());
  await writeExec(`${root}/neonvm/bin/uevent-hook`, guestUeventHook());
  await writeExec(`${root}/neonvm/bin/blkid`, guestBlkidShim());
  await writeExec(`${root}/neonvm/bin/udhcpc.script`, guestUdhcpcScript());
  await writeExec(`${root}/neonvm/bin/neonvmd-sh`, guestNeonvmdStandIn());
  await writeExec(`${root}/neonvm/acpi/PWRF/00000080`, guestPowerButtonAction());
  if (variant.addToRoot) await variant.addToRoot(root);
  const raw = `${work}/root.ext4`;
  await run(["truncate", "-s", `${variant.diskMiB ?? 64}M`, raw], { step: "guest.rootdisk" });
  await run(["mkfs.ext4", "-q", "-F", "-L", "vmroot", "-b", "4096", "-d", root, raw], {
    step: "guest.rootdisk",
  });
  await run([
    "qemu-img",
    "convert",
    "-q",
    "-f",
    "raw",
    "-O",
    "qcow2",
    "-o",
    "cluster_size=2M,lazy_refcounts=on",
    raw,
    `${out}.tmp`,
  ], { step: "guest.rootdisk" });
  await Deno.rename(`${out}.tmp`, out);
}

async function buildImageArchive(
  work: string,
  disk: string,
  out: string,
  image: string,
): Promise<void> {
  const layerRoot = `${work}/layer`;
  await Deno.mkdir(`${layerRoot}/bin`, { recursive: true });
  await Deno.copyFile(disk, `${layerRoot}/disk.qcow2`);
  await Deno.copyFile("/bin/busybox", `${layerRoot}/bin/busybox`);
  await Deno.chmod(`${layerRoot}/bin/busybox`, 0o755);
  for (const a of ["sh", "mv", "chown", "cp", "sysctl", "ls", "cat"]) {
    await Deno.symlink("busybox", `${layerRoot}/bin/${a}`);
  }
  const layerTar = `${work}/layer.tar`;
  await run(["tar", ...DETERMINISTIC_TAR, "-C", layerRoot, "-cf", layerTar, "."], {
    step: "guest.image",
  });
  const sha = await sha256File(layerTar, "guest.image");
  await writeDockerArchive(
    out,
    [{ path: layerTar, sha256: sha, comment: "neonvm-ts test guest: /disk.qcow2 + busybox" }],
    { env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], cmd: ["sh"] },
    [image],
    "guest.image",
  );
}

/** Builds (or reuses, unless `force`) the test guest (or a `variant` of it) in `dir`. */
export async function buildTestGuest(
  dir = DEFAULT_GUEST_DIR,
  options: { force?: boolean; kernel?: string; variant?: GuestVariant } = {},
): Promise<TestGuest> {
  const paths = testGuestPaths(dir);
  if (
    !options.force && await exists(paths.kernelPath) && await exists(paths.initrdPath) &&
    await exists(paths.diskPath) && await exists(paths.imageArchivePath)
  ) return paths;
  await Deno.mkdir(dir, { recursive: true });
  const kernel = options.kernel === undefined
    ? await findKernel()
    : { path: options.kernel, version: options.kernel.replace(/^.*vmlinuz-/, "") };
  const work = await Deno.makeTempDir({ prefix: "neonvm-guest-" });
  try {
    await Deno.copyFile(kernel.path, `${paths.kernelPath}.tmp`);
    await Deno.rename(`${paths.kernelPath}.tmp`, paths.kernelPath);
    await buildInitramfs(work, paths.initrdPath, kernel.version);
    const variant = options.variant ?? {};
    await buildRootDisk(work, paths.diskPath, variant);
    await buildImageArchive(
      work,
      paths.diskPath,
      paths.imageArchivePath,
      variant.image ?? TEST_GUEST_IMAGE,
    );
  } finally {
    await Deno.remove(work, { recursive: true });
  }
  return paths;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      out: { type: "string", default: DEFAULT_GUEST_DIR },
      kernel: { type: "string" },
      force: { type: "boolean", default: false },
    },
  });
  const paths = await buildTestGuest(values.out, {
    force: values.force,
    ...(values.kernel === undefined ? {} : { kernel: values.kernel }),
  });
  writeStdout(JSON.stringify({ ...paths, image: TEST_GUEST_IMAGE }, null, 2) + "\n");
}
