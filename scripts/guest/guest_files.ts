/**
 * Contents of the minimal test guest: the initramfs `/init` (loads the virtio, virtio-mem and
 * CPU/ACPI modules of the Debian cloud kernel, then switches to the root disk), and the root
 * disk's busybox init files (inittab, vminit, vmstart, CPU hot-add hook, ACPI power button action,
 * a reporter that prints online CPUs and MemTotal on the console). Pure: builds strings only; the
 * build script writes them. Must not depend on anything the runner does not provide.
 * @module
 */

/** Prefix of every line the guest prints for tests to read. */
export const GUEST_REPORT_PREFIX = "neonvm-guest:";

/**
 * Kernel modules the guest needs, in load order (dependencies first): virtio PCI transport,
 * block (root disk + runtime ISO), virtio-mem, virtio console/serial (log port), virtio-net,
 * ISO 9660 (runtime and config disks), and the ACPI power button with evdev for acpid.
 */
export const GUEST_MODULES: readonly string[] = [
  "virtio_ring",
  "virtio",
  "virtio_pci_modern_dev",
  "virtio_pci_legacy_dev",
  "virtio_pci",
  "virtio_blk",
  "virtio_mem",
  "virtio_console",
  "failover",
  "net_failover",
  "virtio_net",
  "cdrom",
  "isofs",
  "button",
  "evdev",
];

/**
 * The initramfs `/init`. Loads every module, waits for the root device named by `root=`, mounts
 * it and hands over to `init=` (default `/neonvm/bin/init`). Any guest image with a root file
 * system on `/dev/vda` works with it, so the kernel + initrd pair is independent of the image.
 */
export function initramfsInit(modules: readonly string[]): string {
  const loads = modules.map((m) => `load ${m}`).join("\n");
  return `#!/bin/busybox sh
# initramfs init of the neonvm-ts test kernel: load modules, mount root, switch_root.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
load() {
  f=$(find /lib/modules -name "$1.ko" | head -n 1)
  [ -n "$f" ] || { echo "initramfs: module $1 missing"; return 0; }
  insmod "$f" 2>/dev/null || grep -q "^$1 " /proc/modules || echo "initramfs: cannot load $1"
}
${loads}
root=/dev/vda
init=/neonvm/bin/init
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    root=*) root="\${arg#root=}" ;;
    init=*) init="\${arg#init=}" ;;
  esac
done
i=0
while [ ! -b "$root" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
mkdir -p /newroot
if ! mount -o rw "$root" /newroot; then
  echo "initramfs: cannot mount $root"; sleep 2; poweroff -f
fi
mount --move /dev /newroot/dev 2>/dev/null || umount /dev
umount /sys /proc
exec switch_root /newroot "$init"
`;
}

/** `/etc/inittab` of the test guest (busybox init). */
export function guestInittab(): string {
  return [
    "::sysinit:/neonvm/bin/vminit",
    "::respawn:/neonvm/bin/uevent /neonvm/bin/uevent-hook",
    "::respawn:/neonvm/bin/acpid -f -c /neonvm/acpi -l /dev/null",
    "::respawn:/neonvm/bin/reporter",
    "::respawn:/neonvm/bin/udhcpc -f -i eth0 -t 100 -T 1 -s /neonvm/bin/udhcpc.script",
    "::respawn:/neonvm/bin/nc -ll -p 25183 -e /neonvm/bin/neonvmd-sh",
    "::once:/neonvm/bin/vmstart",
    "::shutdown:/neonvm/bin/vmshutdown",
    "",
  ].join("\n");
}

/** `/neonvm/bin/vminit`: mounts, runtime disk (mounts.sh, sysctls), hostname, loopback. */
export function guestVminit(): string {
  return `#!/neonvm/bin/sh
export PATH=/neonvm/bin
grep -q " /proc " /proc/mounts 2>/dev/null || mount -t proc proc /proc
grep -q " /sys " /proc/mounts || mount -t sysfs sysfs /sys
grep -q " /dev " /proc/mounts || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /sys/fs/cgroup /neonvm/runtime /tmp /run
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 shm /dev/shm
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
rt=$(findfs LABEL=vmruntime 2>/dev/null || echo /dev/vdb)
if mount -t iso9660 -o ro "$rt" /neonvm/runtime; then
  echo "${GUEST_REPORT_PREFIX} runtime disk mounted from $rt" > /dev/console
else
  echo "${GUEST_REPORT_PREFIX} runtime disk missing" > /dev/console
fi
if [ -f /neonvm/runtime/mounts.sh ]; then
  if sh /neonvm/runtime/mounts.sh > /dev/console 2>&1; then
    echo "${GUEST_REPORT_PREFIX} mounts ok" > /dev/console
  else
    echo "${GUEST_REPORT_PREFIX} mounts failed" > /dev/console
  fi
fi
if [ -f /neonvm/runtime/sysctl.conf ]; then
  sysctl -p /neonvm/runtime/sysctl.conf > /dev/null 2>&1
fi
for arg in $(cat /proc/cmdline); do
  case "$arg" in hostname=*) hostname "\${arg#hostname=}" ;; esac
done
ip link set lo up
ip link set eth0 up 2>/dev/null
echo "${GUEST_REPORT_PREFIX} booted hostname=$(hostname) kernel=$(uname -r)" > /dev/console
`;
}

/**
 * `/neonvm/bin/vmstart`: runs the workload from the runtime disk (env.sh, then command.sh and
 * args.sh), reporting its exit status; without command/args it only reports that it is idle.
 */
export function guestVmstart(): string {
  return `#!/neonvm/bin/sh
export PATH=/neonvm/bin:/usr/bin:/bin
rt=/neonvm/runtime
if [ ! -f $rt/command.sh ] && [ ! -f $rt/args.sh ]; then
  echo "${GUEST_REPORT_PREFIX} no workload" > /dev/console
  exit 0
fi
cmd=""
args=""
[ -f $rt/command.sh ] && cmd=$(cat $rt/command.sh)
[ -f $rt/args.sh ] && args=$(cat $rt/args.sh)
{
  [ -f $rt/env.sh ] && echo ". $rt/env.sh"
  printf 'exec %s %s\n' "$cmd" "$args"
} > /run/vmstarter.sh
sh /run/vmstarter.sh > /dev/console 2>&1
echo "${GUEST_REPORT_PREFIX} workload exited status=$?" > /dev/console
`;
}

/** `/neonvm/bin/uevent-hook`: onlines vCPUs hot-added by QMP (the reference's udev rule). */
export function guestUeventHook(): string {
  return `#!/neonvm/bin/sh
if [ "$SUBSYSTEM" = cpu ] && [ "$ACTION" = add ] && [ -f "/sys$DEVPATH/online" ]; then
  [ "$(cat /sys$DEVPATH/online)" = 0 ] && echo 1 > "/sys$DEVPATH/online"
fi
exit 0
`;
}

/** `/neonvm/bin/reporter`: prints online CPUs and MemTotal whenever they change. */
export function guestReporter(): string {
  return `#!/neonvm/bin/sh
interval=0.3
for arg in $(cat /proc/cmdline); do
  case "$arg" in neonvm.report_interval=*) interval="\${arg#neonvm.report_interval=}" ;; esac
done
last=""
while true; do
  online=$(cat /sys/devices/system/cpu/online)
  n=0
  for r in $(echo "$online" | tr ',' ' '); do
    case "$r" in
      *-*) n=$((n + \${r#*-} - \${r%-*} + 1)) ;;
      *) n=$((n + 1)) ;;
    esac
  done
  mem=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
  cur="cpus_online=$n cpu_list=$online memtotal_kib=$mem"
  if [ "$cur" != "$last" ]; then
    echo "${GUEST_REPORT_PREFIX} $cur" > /dev/console
    last="$cur"
  fi
  sleep "$interval"
done
`;
}

/**
 * `/neonvm/bin/blkid`: the subset mounts.sh uses (`blkid -L <label>`), on busybox `findfs`
 * (the reference's guests ship util-linux blkid).
 */
export function guestBlkidShim(): string {
  return `#!/neonvm/bin/sh
if [ "$1" = "-L" ] && [ -n "$2" ]; then exec /neonvm/bin/findfs "LABEL=$2"; fi
echo "blkid shim: only -L LABEL is supported" >&2
exit 2
`;
}

/** `/neonvm/acpi/PWRF/00000080`: the ACPI power button (QMP `system_powerdown`) powers off. */
export function guestPowerButtonAction(): string {
  return `#!/neonvm/bin/sh
echo "${GUEST_REPORT_PREFIX} power button" > /dev/console
/neonvm/bin/poweroff
`;
}

/** `/neonvm/bin/vmshutdown`: run by init on poweroff. */
export function guestVmshutdown(): string {
  return `#!/neonvm/bin/sh
echo "${GUEST_REPORT_PREFIX} shutting down" > /dev/console
sync
`;
}

/** `/neonvm/bin/udhcpc.script`: applies the lease dnsmasq in the runner pod hands out. */
export function guestUdhcpcScript(): string {
  return `#!/neonvm/bin/sh
case "$1" in
  bound|renew)
    /neonvm/bin/ifconfig "$interface" "$ip" netmask "\${subnet:-255.255.255.0}" up
    [ -n "$router" ] && /neonvm/bin/ip route replace default via "$router"
    echo "${GUEST_REPORT_PREFIX} dhcp $1 ip=$ip" > /dev/console
    ;;
  deconfig) /neonvm/bin/ifconfig "$interface" 0.0.0.0 ;;
esac
exit 0
`;
}

/**
 * `/neonvm/bin/neonvmd-sh`: a stand-in for neonvmd's CPU API (`GET /cpu`, `PUT /cpu`) in busybox
 * shell, run per connection by `nc -ll -e`. The test guest has no Deno runtime for the real
 * daemon (src/daemon, tested on a fake sysfs); this lets the runner's SysfsScaling path be tested
 * end to end against a real guest kernel.
 */
export function guestNeonvmdStandIn(): string {
  return `#!/neonvm/bin/sh
cpu=/sys/devices/system/cpu
count() {
  n=0
  for r in $(tr ',' ' ' < $cpu/online); do
    case "$r" in *-*) n=$((n + \${r#*-} - \${r%-*} + 1)) ;; *) n=$((n + 1)) ;; esac
  done
  echo $n
}
reply() {
  printf 'HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %s\r\nConnection: close\r\n\r\n%s' "$1" "\${#2}" "$2"
}
read -r method path _proto
len=0
while read -r line; do
  line=$(printf '%s' "$line" | tr -d '\r')
  [ -z "$line" ] && break
  case "$line" in [Cc]ontent-[Ll]ength:*) len=$(echo "\${line#*:}" | tr -d ' ') ;; esac
done
body=""
[ "$len" -gt 0 ] 2>/dev/null && body=$(dd bs=1 count="$len" 2>/dev/null)
case "$method $path" in
  "GET /cpu") reply "200 OK" "$(($(count) * 1000))" ;;
  "PUT /cpu")
    case "$body" in ''|*[!0-9]*) reply "400 Bad Request" "bad body"; exit 0 ;; esac
    target=$(((body + 999) / 1000)); [ "$target" -lt 1 ] && target=1
    cur=$(count)
    if [ "$cur" -gt "$target" ]; then
      for c in $(ls -d $cpu/cpu[0-9]* | sed 's/.*cpu//' | sort -rn); do
        [ "$cur" -le "$target" ] && break
        f=$cpu/cpu$c/online
        [ "$c" != 0 ] && [ -f "$f" ] && [ "$(cat $f)" = 1 ] && echo 0 > "$f" && cur=$((cur - 1))
      done
    else
      for c in $(ls -d $cpu/cpu[0-9]* | sed 's/.*cpu//' | sort -n); do
        [ "$cur" -ge "$target" ] && break
        f=$cpu/cpu$c/online
        [ "$c" != 0 ] && [ -f "$f" ] && [ "$(cat $f)" = 0 ] && echo 1 > "$f" && cur=$((cur + 1))
      done
    fi
    reply "200 OK" "" ;;
  *) reply "404 Not Found" "" ;;
esac
`;
}
