#!/bin/busybox sh
# PID 1 of the throwaway guest used by tests/monitor/guest_cgroup_test.ts: mounts a real cgroup v2
# hierarchy with the memory controller, creates the workload cgroup, runs the in-guest check and
# powers off. Test support only; prints "H6-GUEST-EXIT <code>" for the host to read.
/bin/busybox mkdir -p /proc /sys /dev /tmp
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /tmp /sys/fs/cgroup
mount -t tmpfs tmp /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
echo +memory > /sys/fs/cgroup/cgroup.subtree_control
mkdir /sys/fs/cgroup/neon-postgres
ip link set lo up
export HOME=/tmp DENO_DIR=/tmp/deno NO_COLOR=1 DENO_NO_UPDATE_CHECK=1
/bin/deno run -A /guest_check.js
echo "H6-GUEST-EXIT $?"
poweroff -f
