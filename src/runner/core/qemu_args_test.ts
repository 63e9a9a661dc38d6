/**
 * Tests of the QEMU and kernel command-line builders.
 * @module
 */
import assert from "node:assert/strict";
import { bootCpus, buildKernelCmdline, buildQemuArgs, type QemuArgsInput } from "./qemu_args.ts";
import { planDisks } from "./disks.ts";
import { runnerPaths } from "./paths.ts";
import { specFixture } from "./_fixtures.ts";

const paths = runnerPaths("/vm");

function input(over: Partial<QemuArgsInput> = {}): QemuArgsInput {
  const spec = over.spec ?? specFixture();
  return {
    spec,
    cpuScalingMode: "QmpScaling",
    accelerator: "tcg",
    paths,
    disks: planDisks({ spec, paths, diskCacheSettings: "cache=none", sshKeys: false }),
    nics: [{ id: "default", ifname: "tap-def", mac: "02:00:00:00:00:01" }],
    kernelPath: "/vm/kernel/vmlinuz",
    kernelCmdline: "console=ttyS1",
    useVirtioConsole: false,
    receiveMigration: false,
    vhostNet: false,
    ...over,
  };
}

function valueAfter(args: string[], flag: string): string[] {
  const out: string[] = [];
  args.forEach((a, i) => {
    if (a === flag && args[i + 1] !== undefined) out.push(args[i + 1]!);
  });
  return out;
}

Deno.test("QmpScaling boots ceil(min) vCPUs with ceil(max) hot-pluggable slots", () => {
  const spec = specFixture({}, { cpus: { min: "1500m", max: "3500m", use: 2 } });
  const a = buildQemuArgs(input({ spec }));
  assert.deepEqual(valueAfter(a, "-smp"), ["cpus=2,maxcpus=4,sockets=1,cores=4,threads=1"]);
  assert.equal(bootCpus(spec, "SysfsScaling"), 4);
  const s = buildQemuArgs(input({ spec, cpuScalingMode: "SysfsScaling" }));
  assert.deepEqual(valueAfter(s, "-smp"), ["cpus=4,maxcpus=4,sockets=1,cores=4,threads=1"]);
});

Deno.test("memory: boot = min slots, virtio-mem covers max - min with 8M blocks", () => {
  const a = buildQemuArgs(input());
  const G = 1024 ** 3;
  assert.deepEqual(valueAfter(a, "-m"), [`size=${G}b,slots=3,maxmem=${4 * G}b`]);
  assert.deepEqual(valueAfter(a, "-object"), [`memory-backend-ram,id=vmem0,size=${3 * G}b`]);
  assert.ok(
    valueAfter(a, "-device").includes(
      "virtio-mem-pci,id=vm0,memdev=vmem0,block-size=8388608,requested-size=0",
    ),
  );
  const fixed = buildQemuArgs(input({
    spec: specFixture({}, { memorySlots: { min: 2, max: 2, use: 2 } }),
  }));
  assert.deepEqual(valueAfter(fixed, "-object"), [], "no virtio-mem when min == max");
  assert.deepEqual(valueAfter(fixed, "-m"), [`size=${2 * G}b,slots=0,maxmem=${2 * G}b`]);
});

Deno.test("accelerator, QMP sockets, drives, console and migration flags", () => {
  const a = buildQemuArgs(input({ receiveMigration: true, initrdPath: "/vm/kernel/initrd.img" }));
  assert.ok(a.includes("-accel") && !a.includes("-enable-kvm"));
  assert.ok(buildQemuArgs(input({ accelerator: "kvm" })).includes("-enable-kvm"));
  assert.deepEqual(valueAfter(a, "-qmp"), [
    "tcp:0.0.0.0:20183,server,wait=off",
    "tcp:0.0.0.0:20184,server,wait=off",
    "unix:/vm/qmp-sigterm.sock,server,wait=off",
  ]);
  assert.deepEqual(valueAfter(a, "-drive"), [
    "id=rootdisk,file=/vm/images/rootdisk.qcow2,if=virtio,media=disk,index=0,cache=none",
    "id=runtime,file=/vm/images/runtime.iso,if=virtio,media=cdrom,readonly=on,cache=none",
  ]);
  assert.deepEqual(valueAfter(a, "-serial"), ["pty", "stdio"]);
  assert.deepEqual(valueAfter(a, "-incoming"), ["tcp:0:20187"]);
  assert.deepEqual(valueAfter(a, "-initrd"), ["/vm/kernel/initrd.img"]);
  assert.deepEqual(valueAfter(a, "-netdev"), [
    "tap,id=default,ifname=tap-def,queues=4,script=no,downscript=no,vhost=off",
  ]);
  assert.ok(
    valueAfter(a, "-device").includes(
      "virtio-net-pci,mq=on,vectors=10,netdev=default,mac=02:00:00:00:00:01",
    ),
  );
  assert.ok(!a.includes("-runas"));
  const v = buildQemuArgs(input({ useVirtioConsole: true, runAs: "qemu" }));
  assert.deepEqual(valueAfter(v, "-serial"), ["pty"]);
  assert.deepEqual(valueAfter(v, "-runas"), ["qemu"]);
});

Deno.test("kernel command line matches the reference's order", () => {
  const spec = specFixture({}, { cpus: { min: "1500m", max: 4, use: 2 } });
  const base = {
    spec,
    memhpAutoMovableRatio: "301",
    hostname: "vm-pod-1",
    podName: "pod-1",
    useVirtioConsole: false,
  };
  assert.equal(
    buildKernelCmdline({ ...base, cpuScalingMode: "QmpScaling", append: "quiet" }),
    "panic=-1 init=/neonvm/bin/init loglevel=6 root=/dev/vda rw memhp_default_state=online " +
      "memory_hotplug.online_policy=auto-movable memory_hotplug.auto_movable_ratio=301 " +
      "hostname=vm-pod-1 quiet console=ttyS1",
  );
  const sysfs = buildKernelCmdline({
    ...base,
    cpuScalingMode: "SysfsScaling",
    useVirtioConsole: true,
    extraNet: { ip: "10.100.0.5", mask: "255.255.0.0" },
  });
  assert.match(
    sysfs,
    / ip=10\.100\.0\.5:::255\.255\.0\.0:pod-1:eth1:off hostname=vm-pod-1 maxcpus=2 console=hvc0$/,
  );
});
