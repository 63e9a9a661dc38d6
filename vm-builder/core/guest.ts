/**
 * The guest plan: every file the builder adds to the user's root filesystem — `/neonvm` (busybox
 * applets, init scripts, wrappers for shipped host binaries), `/etc/inittab` and the kernel
 * module list — as plain data. Pure: no I/O; io/rootfs.ts writes the plan.
 *
 * Deliberate differences from the reference (§7.3/§7.4), each for a reason:
 * - Shipped glibc binaries (deno, node exporter, flock, setpriv, blkid, e2fsprogs, setquota) run
 *   through the dynamic loader shipped in /neonvm/lib instead of symlinking /neonvm/lib/* into
 *   /lib: that overwrote the image's own libraries and broke images with another libc.
 * - No udevd: a small loop onlines hot-added CPUs (the reference's only udev rule that matters),
 *   vminit creates the /dev/virtio-ports symlinks, and memory hotplug onlining comes from the
 *   kernel command line (`memhp_default_state=online`, auto-movable policy).
 * - Metrics on 9100 come from prometheus-node-exporter (node_* names) instead of vector (host_*).
 * - No sshd/chrony/vector: not shipped (see vm-builder/ARCHITECTURE.md).
 * - Extra commands run through `/neonvm/bin/su -s /neonvm/bin/sh` from a script file, so busybox
 *   init never needs the image's /bin/sh.
 * @module
 */
import type { SpecCommand } from "./spec.ts";
import type { ImageRuntime } from "./oci.ts";
import type { ResolvedUser } from "./users.ts";
import { envExports, shellJoin, shellQuote } from "./shell.ts";

/** One file-system entry to create in the guest root (absolute path). */
export type GuestEntry =
  | { readonly kind: "file"; readonly path: string; readonly mode: number; readonly text: string }
  | { readonly kind: "symlink"; readonly path: string; readonly target: string }
  | { readonly kind: "dir"; readonly path: string; readonly mode: number };

/** A host ELF binary shipped in the guest, run through the shipped loader. */
export interface ShippedBinary {
  /** Name under /neonvm/bin. */
  readonly name: string;
  /** Extra arguments inserted before the caller's. */
  readonly fixedArgs?: readonly string[];
  /** Environment set before exec. */
  readonly env?: Readonly<Record<string, string>>;
}

/** Everything the plan depends on. */
export interface GuestPlanInput {
  readonly runtime: ImageRuntime;
  /** The image USER resolved against its /etc/passwd. */
  readonly user: ResolvedUser;
  readonly commands: readonly SpecCommand[];
  readonly shutdownHook: string | undefined;
  /** Busybox applet names (from `busybox --list`). */
  readonly applets: readonly string[];
  readonly shipped: readonly ShippedBinary[];
  /** Kernel module names to load at boot, in order. */
  readonly modules: readonly string[];
  /** Name of the dynamic loader file in /neonvm/lib, e.g. `ld-linux-x86-64.so.2`. */
  readonly loaderName: string;
  /** Whether the Deno programs (neonvmd, vm-monitor) are present under /neonvm/app. */
  readonly denoApps: { readonly neonvmd: boolean; readonly vmMonitor: boolean };
  /** Whether the node exporter is shipped. */
  readonly nodeExporter: boolean;
}

/** Port of the metrics exporter (reference §1.4). */
export const METRICS_PORT = 9100;
/** Port neonvmd listens on (reference §8.1). */
export const NEONVMD_PORT = 25183;
/** The workload's cgroup (v2), relative to /sys/fs/cgroup. */
export const WORKLOAD_CGROUP = "neon-postgres";

const SH = "#!/neonvm/bin/sh\n";
const PATH_LINE =
  "export PATH=/neonvm/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n";

function vminit(): string {
  return SH +
    `# vminit: busybox init's sysinit step. Mounts, kernel modules, cgroup v2, runtime disk,
# sysctls, root disk growth, hostname, loopback. Runs once, before everything else.
${PATH_LINE}
mkdir -p /proc /sys /dev /tmp /run /neonvm/runtime
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sysfs /sys 2>/dev/null
grep -q ' /dev ' /proc/mounts || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
grep -q ' /dev/pts ' /proc/mounts || mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
grep -q ' /dev/shm ' /proc/mounts || mount -t tmpfs -o mode=1777 shm /dev/shm
chmod 1777 /tmp
echo 7 > /proc/sys/kernel/printk

# On-demand module loads by the kernel go through our modprobe (the image may have none).
echo /neonvm/bin/modprobe > /proc/sys/kernel/modprobe
# Kernel modules (virtio, virtio-mem, iso9660, quota, power button, ...), in load order.
while read -r m; do
  [ -n "$m" ] || continue
  grep -q "^$m " /proc/modules || modprobe "$m" || echo "vminit: cannot load module $m" >&2
done < /neonvm/config/modules

# cgroup v2 with the workload group; the vm-monitor scales it.
mkdir -p /sys/fs/cgroup
grep -q ' /sys/fs/cgroup ' /proc/mounts || mount -t cgroup2 cgroup2 /sys/fs/cgroup
for c in cpuset cpu io memory pids; do
  echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
done
mkdir -p /sys/fs/cgroup/${WORKLOAD_CGROUP}
chmod go+w /sys/fs/cgroup/cgroup.procs

# /dev/virtio-ports/<name> links (what udev would make); the log port is world-writable.
mkdir -p /dev/virtio-ports
for p in /sys/class/virtio-ports/*; do
  [ -f "$p/name" ] || continue
  read -r n < "$p/name" || continue
  [ -n "$n" ] || continue
  ln -sf "../\${p##*/}" "/dev/virtio-ports/$n"
  case "$n" in tech.neon.log.*) chmod 0666 "/dev/\${p##*/}" ;; esac
done

# The runtime disk the runner attaches (label vmruntime; second virtio disk).
dev=$(findfs LABEL=vmruntime 2>/dev/null || echo /dev/vdb)
mount -t iso9660 -o ro "$dev" /neonvm/runtime || echo "vminit: no runtime disk at $dev" >&2
if [ -f /neonvm/runtime/mounts.sh ]; then
  /neonvm/bin/sh /neonvm/runtime/mounts.sh || echo "vminit: mounts.sh failed" >&2
fi
[ -f /neonvm/runtime/sysctl.conf ] && sysctl -q -p /neonvm/runtime/sysctl.conf

# Grow the root file system to the disk (the runner may have resized the qcow2).
resize2fs /dev/vda >/dev/null 2>&1 || echo "vminit: resize2fs /dev/vda failed" >&2

for w in $(cat /proc/cmdline); do
  case "$w" in hostname=*) hostname "\${w#hostname=}" ;; esac
done
ip link set lo up
ip link set eth0 up 2>/dev/null || true
exit 0
`;
}

function vmstart(input: GuestPlanInput): string {
  const u = input.user;
  const drop = u.uid === 0
    ? ""
    : `setpriv --reuid=${u.uid} --regid=${u.gid} ${u.known ? "--init-groups" : "--clear-groups"} `;
  return SH +
    `# vmstart: runs the workload once (init respawns it, like a container's restart=always).
# Command = runtime command.sh or the image ENTRYPOINT; args = runtime args.sh or the image CMD.
${PATH_LINE}
R=/neonvm/runtime
if [ ! -e /neonvm/vmstart.allowed ]; then sleep 1; exit 0; fi
c=""; a=""
if [ -f $R/command.sh ]; then c=$(cat $R/command.sh); else c=$(cat /neonvm/config/entrypoint.sh); fi
if [ -f $R/args.sh ]; then a=$(cat $R/args.sh); else a=$(cat /neonvm/config/cmd.sh); fi
if [ -z "$c$a" ]; then
  echo "vmstart: nothing to run: the image has no ENTRYPOINT or CMD and the VM sets no command or args" >&2
  sleep 5
  exit 1
fi
S=/neonvm/bin/vmstarter.sh
{
  echo '#!/neonvm/bin/sh'
  cat /neonvm/config/image-env.sh
  [ -f $R/env.sh ] && cat $R/env.sh
  echo '[ -n "$HOME" ] || export HOME=${shellQuote(u.home)}'
  echo 'cd ${shellQuote(input.runtime.workingDir || "/")} 2>/dev/null || cd /'
  echo "exec $c $a"
} > $S.tmp && mv $S.tmp $S
echo $$ > /sys/fs/cgroup/${WORKLOAD_CGROUP}/cgroup.procs 2>/dev/null ||
  echo "vmstart: cannot join cgroup ${WORKLOAD_CGROUP}" >&2
exec flock /neonvm/vmstart.lock ${drop}/neonvm/bin/sh $S
`;
}

function vmshutdown(hook: boolean): string {
  return SH +
    `# vmshutdown: init's shutdown step. Stops respawning the workload and, with a shutdown
# hook, runs the hook every 0.5 s until the workload has exited (the vmstart lock is free).
${PATH_LINE}
rm -f /neonvm/vmstart.allowed
${
      hook
        ? `# Bounded on purpose (the reference loops forever): a hook that never stops the workload
# would otherwise hang shutdown until QEMU is killed; init's SIGTERM follows this script.
i=0
while ! flock -n /neonvm/vmstart.lock true && [ $i -lt 120 ]; do
  /neonvm/bin/sh /neonvm/config/shutdown-hook.sh
  sleep 0.5
  i=$((i + 1))
done`
        : ":"
    }
`;
}

const CPU_ONLINE = SH +
  `# cpu-hotplug-online: onlines CPUs hot-added after boot (QMP scaling mode). CPUs present at
# boot are left alone so neonvmd's sysfs scaling (offlining) is never undone.
${PATH_LINE}known=" "
for d in /sys/devices/system/cpu/cpu[0-9]*; do known="$known\${d##*/} "; done
while :; do
  for d in /sys/devices/system/cpu/cpu[0-9]*; do
    c=\${d##*/}
    case "$known" in *" $c "*) continue ;; esac
    known="$known$c "
    v=1
    [ -f "$d/online" ] && read -r v < "$d/online"
    [ "$v" = 0 ] && echo 1 > "$d/online"
  done
  sleep 1
done
`;

const UDHCPC_SCRIPT = SH +
  `# udhcpc.script: applies a DHCP lease from the runner's dnsmasq (address, routes incl.
# option 121, DNS servers and search domains).
${PATH_LINE}
case "$1" in
  deconfig)
    ip addr flush dev "$interface"
    ip link set "$interface" up
    ;;
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/\${mask:-24}" dev "$interface"
    if [ -n "$staticroutes" ]; then
      set -- $staticroutes
      while [ $# -ge 2 ]; do ip route replace "$1" via "$2" dev "$interface"; shift 2; done
    elif [ -n "$router" ]; then
      for r in $router; do ip route replace default via "$r" dev "$interface"; break; done
    fi
    if [ -n "$dns" ]; then
      {
        [ -n "$search" ] && echo "search $search"
        [ -z "$search" ] && [ -n "$domain" ] && echo "search $domain"
        for d in $dns; do echo "nameserver $d"; done
      } > /etc/resolv.conf.neonvm && rm -f /etc/resolv.conf && mv /etc/resolv.conf.neonvm /etc/resolv.conf
    fi
    ;;
esac
exit 0
`;

const RESIZE_SWAP = SH +
  `# resize-swap [--once] <bytes>: runs the runner's resize-swap-internal.sh from the runtime disk.
# --once refuses later calls (the runtime disk is read-only, so a marker replaces deleting it).
${PATH_LINE}
once=0
if [ "$1" = "--once" ]; then once=1; shift; fi
if [ $# -ne 1 ]; then echo "usage: resize-swap [--once] <bytes>" >&2; exit 2; fi
if [ -e /neonvm/.resize-swap-once ]; then echo "resize-swap: already run with --once" >&2; exit 1; fi
[ -f /neonvm/runtime/resize-swap-internal.sh ] || { echo "resize-swap: no swap configured" >&2; exit 1; }
/neonvm/bin/sh /neonvm/runtime/resize-swap-internal.sh "$1" || exit $?
[ $once = 1 ] && touch /neonvm/.resize-swap-once
exit 0
`;

const SET_DISK_QUOTA = SH +
  `# set-disk-quota <KiB> <mountpoint>: hard block limit for project 0 on an ext4 disk.
${PATH_LINE}
if [ $# -ne 2 ]; then echo "usage: set-disk-quota <KiB> <mountpoint>" >&2; exit 2; fi
exec setquota -P 0 0 "$1" 0 0 "$2"
`;

function wrapper(b: ShippedBinary, loader: string): string {
  const env = Object.entries(b.env ?? {}).map(([k, v]) => `export ${k}=${shellQuote(v)}\n`).join(
    "",
  );
  const fixed = b.fixedArgs && b.fixedArgs.length > 0 ? shellJoin(b.fixedArgs) + " " : "";
  return SH +
    `# ${b.name}: host binary shipped with its libraries; runs through the shipped loader so
# it works whatever libc the image has.
${env}exec /neonvm/lib/${loader} --library-path /neonvm/lib --argv0 ${b.name} /neonvm/libexec/${b.name} ${fixed}"$@"
`;
}

function denoApp(entry: string): string {
  return SH + `# Runs ${entry} on the shipped Deno runtime, from the pre-populated cache (offline).
cd /neonvm/app || exit 1
exec /neonvm/bin/deno run --cached-only --no-prompt -A ${entry} "$@"
`;
}

/** The inittab lines (reference §7.4, adjusted as the module comment says). */
export function renderInittab(input: GuestPlanInput): string {
  const lines = [
    "# Generated by neonvm-ts vm-builder; replaces the image's /etc/inittab.",
    "::sysinit:/neonvm/bin/vminit",
    "::once:/neonvm/bin/touch /neonvm/vmstart.allowed",
    "::once:/neonvm/bin/cat /proc/version",
    "::respawn:/neonvm/bin/udhcpc -t 1 -T 1 -A 1 -f -i eth0 -O 121 -O 119 -s /neonvm/bin/udhcpc.script",
    "::respawn:/neonvm/bin/cpu-hotplug-online",
    "::respawn:/neonvm/bin/acpid -d -c /neonvm/acpi",
  ];
  if (input.nodeExporter) lines.push("::respawn:/neonvm/bin/node-exporter");
  if (input.denoApps.neonvmd) {
    lines.push(`::respawn:/neonvm/bin/neonvmd --addr=0.0.0.0:${NEONVMD_PORT}`);
  }
  lines.push("::respawn:/neonvm/bin/vmstart");
  for (const c of input.commands) {
    lines.push(
      `::${c.sysvInitAction}:/neonvm/bin/su -p -s /neonvm/bin/sh ${c.user} -c /neonvm/config/commands/${c.name}.sh`,
    );
  }
  lines.push("ttyS0::respawn:/neonvm/bin/getty -n -l /neonvm/bin/sh 115200 ttyS0 linux");
  lines.push("::shutdown:/neonvm/bin/vmshutdown");
  return lines.join("\n") + "\n";
}

/** Node exporter flags: only the collectors the agent and operators need. */
export const NODE_EXPORTER_ARGS = [
  `--web.listen-address=:${METRICS_PORT}`,
  "--collector.disable-defaults",
  "--collector.loadavg",
  "--collector.meminfo",
  "--collector.cpu",
  "--collector.pressure",
  "--collector.vmstat",
  "--collector.stat",
  "--collector.filesystem",
  "--collector.netdev",
] as const;

/** Builds the full list of entries to write into the guest root. */
export function planGuest(input: GuestPlanInput): GuestEntry[] {
  const out: GuestEntry[] = [];
  const dir = (path: string, mode = 0o755) => out.push({ kind: "dir", path, mode });
  const file = (path: string, text: string, mode = 0o755) =>
    out.push({ kind: "file", path, mode, text });
  for (const d of ["/neonvm", "/neonvm/bin", "/neonvm/lib", "/neonvm/libexec", "/neonvm/config"]) {
    dir(d);
  }
  dir("/neonvm/config/commands");
  dir("/neonvm/runtime");
  dir("/neonvm/acpi");
  dir("/neonvm/acpi/PWRF");
  const own = new Set([
    "vminit",
    "vmstart",
    "vmshutdown",
    "cpu-hotplug-online",
    "udhcpc.script",
    "resize-swap",
    "set-disk-quota",
    "neonvmd",
    "vm-monitor",
    ...input.shipped.map((b) => b.name),
  ]);
  for (const a of [...input.applets].sort()) {
    if (a === "busybox" || own.has(a)) continue;
    out.push({ kind: "symlink", path: `/neonvm/bin/${a}`, target: "busybox" });
  }
  file("/neonvm/bin/vminit", vminit());
  file("/neonvm/bin/vmstart", vmstart(input));
  file("/neonvm/bin/vmshutdown", vmshutdown(input.shutdownHook !== undefined));
  file("/neonvm/bin/cpu-hotplug-online", CPU_ONLINE);
  file("/neonvm/bin/udhcpc.script", UDHCPC_SCRIPT);
  file("/neonvm/bin/resize-swap", RESIZE_SWAP);
  file("/neonvm/bin/set-disk-quota", SET_DISK_QUOTA);
  for (const b of input.shipped) file(`/neonvm/bin/${b.name}`, wrapper(b, input.loaderName));
  if (input.denoApps.neonvmd) file("/neonvm/bin/neonvmd", denoApp("src/daemon/main.ts"));
  if (input.denoApps.vmMonitor) file("/neonvm/bin/vm-monitor", denoApp("src/monitor/main.ts"));
  file(
    "/neonvm/acpi/PWRF/00000080",
    SH + "# ACPI power button (QMP system_powerdown): clean shutdown through init.\n" +
      "exec /neonvm/bin/poweroff\n",
  );
  file("/neonvm/config/image-env.sh", envExports(input.runtime.env), 0o644);
  file("/neonvm/config/entrypoint.sh", shellJoin(input.runtime.entrypoint) + "\n", 0o644);
  file("/neonvm/config/cmd.sh", shellJoin(input.runtime.cmd) + "\n", 0o644);
  file("/neonvm/config/modules", input.modules.map((m) => m + "\n").join(""), 0o644);
  if (input.shutdownHook !== undefined) {
    file("/neonvm/config/shutdown-hook.sh", SH + input.shutdownHook + "\n");
  }
  for (const c of input.commands) {
    file(`/neonvm/config/commands/${c.name}.sh`, SH + `ulimit -c unlimited\n${c.shell}\n`);
  }
  file("/etc/inittab", renderInittab(input), 0o644);
  return out;
}
