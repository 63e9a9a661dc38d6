/**
 * Tests of runner flag parsing.
 * @module
 */
import assert from "node:assert/strict";
import { encodeRunnerFlagJson } from "../api/runner_api.ts";
import { ConfigError } from "../lib/errors.ts";
import { loadRunnerConfig, normaliseFlags } from "./config.ts";

const spec = {
  guest: {
    cpus: { min: 1, max: 2, use: 1 },
    memorySlotSize: "1Gi",
    memorySlots: { min: 1, max: 2, use: 1 },
    rootDisk: { image: "img" },
  },
};
const env = { K8S_POD_NAME: "vm-a-xyz" };

Deno.test("reference-style single-dash flags, gzip+base64 spec", async () => {
  const cfg = await loadRunnerConfig(
    [
      "-vmspec",
      await encodeRunnerFlagJson(spec),
      `-vmstatus=${await encodeRunnerFlagJson({ podName: "vm-a-xyz", phase: "Pending" })}`,
      "-cpu-scaling-mode",
      "SysfsScaling",
      "-memhp-auto-movable-ratio",
      "401",
      "-skip-cgroup-management",
      "--use-virtio-console=false",
      "-kernelpath=/k/vmlinuz",
    ],
    { ...env, RECEIVE_MIGRATION: "true" },
    (p) => p === "/k/initrd.img",
  );
  assert.equal(cfg.cpuScalingMode, "SysfsScaling");
  assert.equal(cfg.skipCgroupManagement, true);
  assert.equal(cfg.useVirtioConsole, false);
  assert.equal(cfg.receiveMigration, true);
  assert.equal(cfg.initrdPath, "/k/initrd.img");
  assert.equal(cfg.diskCacheSettings, "cache=none");
  assert.equal(cfg.spec.guest.cpus.max, 2000);
  assert.equal(cfg.status.phase, "Pending");
  assert.equal(cfg.shutdownGraceSeconds, 5);
  assert.equal(cfg.vmDir, "/vm");
});

Deno.test("missing or bad flags are ConfigErrors naming the flag", async () => {
  const good = await encodeRunnerFlagJson(spec);
  const base = ["-vmspec", good, "-memhp-auto-movable-ratio", "301"];
  await assert.rejects(
    loadRunnerConfig([...base, "-cpu-scaling-mode", "Magic"], env, () => false),
    (e: unknown) => e instanceof ConfigError && /cpu-scaling-mode/.test(e.message),
  );
  await assert.rejects(
    loadRunnerConfig(["-vmspec", good, "-cpu-scaling-mode", "QmpScaling"], env, () => false),
    (e: unknown) => e instanceof ConfigError && /memhp-auto-movable-ratio/.test(e.message),
  );
  await assert.rejects(
    loadRunnerConfig([...base, "-cpu-scaling-mode", "QmpScaling"], {}, () => false),
    /K8S_POD_NAME/,
  );
  await assert.rejects(
    loadRunnerConfig(
      ["-vmspec", "garbage", "-memhp-auto-movable-ratio", "1", "-cpu-scaling-mode", "QmpScaling"],
      env,
      () => false,
    ),
    ConfigError,
  );
  const badUse = await encodeRunnerFlagJson({
    guest: { ...spec.guest, cpus: { min: 2, max: 3, use: 1 } },
  });
  await assert.rejects(
    loadRunnerConfig(
      ["-vmspec", badUse, "-memhp-auto-movable-ratio", "1", "-cpu-scaling-mode", "QmpScaling"],
      env,
      () => false,
    ),
    /min <= use <= max/,
  );
  await assert.rejects(loadRunnerConfig([...base, "-nonsense"], env, () => false), ConfigError);
});

Deno.test("normaliseFlags", () => {
  assert.deepEqual(
    normaliseFlags(["-a", "x", "--b=true", "-skip-network=true", "-skip-network=false", "-"]),
    [
      "--a",
      "x",
      "--b=true",
      "--skip-network",
      "-",
    ],
  );
});
