/**
 * Tests of the runner's CPU arithmetic.
 * @module
 */
import assert from "node:assert/strict";
import { cgroupCpuQuota, cpuMaxLine, qemuCgroupPath, sysfsCpuCurrent } from "./cpu.ts";

Deno.test("cgroup quota is use x 4 per 100 ms period", () => {
  assert.deepEqual(cgroupCpuQuota(250), { quotaUs: 100_000, periodUs: 100_000 });
  assert.deepEqual(cgroupCpuQuota(1500), { quotaUs: 600_000, periodUs: 100_000 });
  assert.equal(cpuMaxLine(cgroupCpuQuota(2000)), "800000 100000");
});

Deno.test("sysfs /cpu_current prefers the guest when whole CPUs differ", () => {
  assert.equal(sysfsCpuCurrent(1500, 2000), 1500);
  assert.equal(sysfsCpuCurrent(1500, 1000), 1000);
  assert.equal(sysfsCpuCurrent(3000, 2000), 2000);
});

Deno.test("qemu cgroup path from /proc/self/cgroup (v1 cpu line, else v2)", () => {
  const v1 = "12:cpuset:/kubepods/x\n4:cpu,cpuacct:/kubepods/pod1/c1\n0::/\n";
  assert.deepEqual(qemuCgroupPath(v1, "p"), {
    version: 1,
    path: "/kubepods/pod1/c1/neonvm-qemu-p",
  });
  assert.deepEqual(qemuCgroupPath("0::/\n", "p"), { version: 2, path: "/neonvm-qemu-p" });
  assert.deepEqual(qemuCgroupPath("0::/kubepods/a/\n", "p"), {
    version: 2,
    path: "/kubepods/a/neonvm-qemu-p",
  });
});
