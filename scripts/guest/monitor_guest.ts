/**
 * The monitor guest: the busybox test guest (build_test_guest.ts) plus the Deno runtime, our
 * vm-monitor bundled from src/monitor/main.ts, and the test driver (monitor_guest_driver.ts). Its
 * workload (`spec.guest.command: [MONITOR_GUEST_COMMAND]`) enables the cgroup v2 memory controller,
 * creates `neon-postgres`, starts the driver on port 10380 and keeps the vm-monitor running on
 * 0.0.0.0:10301 with its log in /tmp/monitor.log. Used by tests/agent/cluster_fastpath_test.ts.
 * The image is tagged by the content hash of everything in it, so a changed monitor is a new image:
 *   localhost/neonvm-ts/monitor-guest:<hash>   (built under /var/cache/neonvm-ts/monitor-guest/)
 * Usage: deno run -A scripts/guest/monitor_guest.ts   (builds; prints paths and image)
 * Must not touch anything outside its cache directory, its temp directory and, when asked to
 * import, the nodes' containerd image stores.
 * @module
 */
import { exists, run, sha256Hex, writeStdout } from "../cluster/exec.ts";
import { importArchive, type ImportTarget, listImages } from "../images/import.ts";
import { buildTestGuest, type TestGuest } from "./build_test_guest.ts";

/** Cache directory of built monitor guests (one subdirectory per content hash). */
export const MONITOR_GUEST_DIR = "/var/cache/neonvm-ts/monitor-guest";
/** Image repository of the monitor guest; the tag is the content hash. */
export const MONITOR_GUEST_REPO = "localhost/neonvm-ts/monitor-guest";
/** `spec.guest.command` that starts the monitor guest's workload. */
export const MONITOR_GUEST_COMMAND = "/neonvm/bin/monitor-guest-start";
/** Port of the in-guest test driver. */
export const MONITOR_GUEST_DRIVER_PORT = 10380;

const ROOT = new URL("../../", import.meta.url).pathname;

/** The workload script: cgroup set-up, driver in the background, monitor restarted on exit. */
export function monitorGuestStart(): string {
  return `#!/neonvm/bin/sh
# Workload of the monitor guest (scripts/guest/monitor_guest.ts).
export PATH=/neonvm/bin HOME=/tmp DENO_DIR=/tmp/deno NO_COLOR=1 DENO_NO_UPDATE_CHECK=1
echo +memory > /sys/fs/cgroup/cgroup.subtree_control
mkdir -p /sys/fs/cgroup/neon-postgres
echo "neonvm-guest: monitor guest workload starting" > /dev/console
/neonvm/test/deno run -A /neonvm/test/driver.js serve ${MONITOR_GUEST_DRIVER_PORT} > /dev/console 2>&1 &
while true; do
  /neonvm/test/deno run -A /neonvm/test/monitor.js --addr 0.0.0.0:10301 --cgroup neon-postgres \\
    2>> /tmp/monitor.log
  echo "neonvm-guest: vm-monitor exited status=$?" > /dev/console
  sleep 1
done
`;
}

async function bundle(entry: string, out: string): Promise<void> {
  await run([Deno.execPath(), "bundle", "-q", "-o", out, entry], {
    step: "monitor-guest.bundle",
    cwd: ROOT,
  });
}

/** A built monitor guest. */
export interface MonitorGuest extends TestGuest {
  /** Image reference (repository:content-hash). */
  image: string;
}

/** Bundles the monitor and the driver, then builds the guest unless one with that content exists. */
export async function buildMonitorGuest(): Promise<MonitorGuest> {
  const work = await Deno.makeTempDir({ prefix: "monitor-guest-" });
  try {
    await bundle("src/monitor/main.ts", `${work}/monitor.js`);
    await bundle("scripts/guest/monitor_guest_driver.ts", `${work}/driver.js`);
    const deno = Deno.realPathSync(Deno.execPath());
    const libs = (await run(["ldd", deno], { step: "monitor-guest.ldd" })).stdout
      .split("\n").map((l) => /(\/\S+)/.exec(l)?.[1]).filter((l): l is string => l !== undefined);
    const parts = [
      await Deno.readTextFile(`${work}/monitor.js`),
      await Deno.readTextFile(`${work}/driver.js`),
      monitorGuestStart(),
      Deno.version.deno,
      await Deno.readTextFile(`${ROOT}scripts/guest/build_test_guest.ts`),
      await Deno.readTextFile(`${ROOT}scripts/guest/guest_files.ts`),
    ];
    const hash = (await sha256Hex(parts.join("\n\0"))).slice(0, 16);
    const image = `${MONITOR_GUEST_REPO}:${hash}`;
    const dir = `${MONITOR_GUEST_DIR}/${hash}`;
    const paths = await buildTestGuest(dir, {
      variant: {
        diskMiB: 256,
        image,
        addToRoot: async (root) => {
          await Deno.mkdir(`${root}/neonvm/test`, { recursive: true });
          await Deno.copyFile(deno, `${root}/neonvm/test/deno`);
          await Deno.chmod(`${root}/neonvm/test/deno`, 0o755);
          for (const lib of libs) {
            const dst = `${root}${lib}`;
            await Deno.mkdir(dst.slice(0, dst.lastIndexOf("/")), { recursive: true });
            if (!(await exists(dst))) await Deno.copyFile(Deno.realPathSync(lib), dst);
          }
          await Deno.copyFile(`${work}/monitor.js`, `${root}/neonvm/test/monitor.js`);
          await Deno.copyFile(`${work}/driver.js`, `${root}/neonvm/test/driver.js`);
          await Deno.writeTextFile(`${root}${MONITOR_GUEST_COMMAND}`, monitorGuestStart());
          await Deno.chmod(`${root}${MONITOR_GUEST_COMMAND}`, 0o755);
        },
      },
    });
    // Older builds are never used again: keep only this one.
    for await (const e of Deno.readDir(MONITOR_GUEST_DIR)) {
      if (e.isDirectory && e.name !== hash && /^[0-9a-f]{16}$/.test(e.name)) {
        await Deno.remove(`${MONITOR_GUEST_DIR}/${e.name}`, { recursive: true });
      }
    }
    return { ...paths, image };
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}

/**
 * Imports the guest into every node whose containerd lacks its image, and removes the node's
 * older monitor-guest images (containerd collects their content).
 */
export async function importMonitorGuest(
  guest: MonitorGuest,
  nodes: readonly ImportTarget[],
  logFile: string,
): Promise<void> {
  for (const node of nodes) {
    const images = await listImages(node);
    const stale = images.filter((i) => i.startsWith(`${MONITOR_GUEST_REPO}:`) && i !== guest.image);
    if (stale.length > 0) {
      await run(["ctr", "-a", node.containerdSocket, "-n", "k8s.io", "images", "rm", ...stale], {
        step: `${node.name}.monitor-guest-prune`,
        logFile,
        allowFail: true,
      });
    }
    if (images.includes(guest.image)) continue;
    await importArchive(node, guest.imageArchivePath, logFile);
  }
}

if (import.meta.main) {
  const guest = await buildMonitorGuest();
  writeStdout(JSON.stringify(guest, null, 2) + "\n");
}
