import assert from "node:assert/strict";
import { parseControllerArgs } from "./config.ts";
import { ConfigError } from "../lib/errors.ts";

Deno.test("config: reference flags and defaults", () => {
  const c = parseControllerArgs([
    "--leader-elect",
    "--concurrency-limit=128",
    "--disable-runner-cgroup",
    "--default-cpu-scaling-mode=SysfsScaling",
    "--use-virtio-console=false",
    "--failing-refresh-interval=15s",
    "--metrics-bind-address=127.0.0.1:9090",
    "--runner-overhead-memory=512Mi",
  ], { VM_RUNNER_IMAGE: "img:1" });
  assert.equal(c.leaderElect, true);
  assert.equal(c.concurrencyLimit, 128);
  assert.equal(c.disableRunnerCgroup, true);
  assert.equal(c.defaultCpuScalingMode, "SysfsScaling");
  assert.equal(c.useVirtioConsole, false);
  assert.equal(c.failingRefreshIntervalMs, 15_000);
  assert.deepEqual(c.metricsBindAddress, { hostname: "127.0.0.1", port: 9090 });
  assert.deepEqual(c.healthProbeBindAddress, { hostname: "0.0.0.0", port: 8081 });
  assert.equal(c.runnerImage, "img:1");
  assert.equal(c.runnerOverheadMemory, 512 * 1024 * 1024);
  assert.deepEqual(c.runnerCommand, [
    "deno",
    "run",
    "--cached-only",
    "-A",
    "/app/src/runner/main.ts",
  ]);
  assert.equal(c.memhpAutoMovableRatio, "301");
});

Deno.test("config: bad flags name the field; no runner image is an error", () => {
  assert.throws(
    () => parseControllerArgs(["--concurrency-limit=0"], { VM_RUNNER_IMAGE: "x" }),
    (e) => e instanceof ConfigError && /concurrencyLimit/.test(e.message),
  );
  assert.throws(
    () => parseControllerArgs([]),
    (e) => e instanceof ConfigError && /runnerImage/.test(e.message),
  );
  assert.throws(() => parseControllerArgs(["--nope"], { VM_RUNNER_IMAGE: "x" }), ConfigError);
});

Deno.test("config: the args of deploy/controller/deployment.yaml parse", () => {
  const c = parseControllerArgs([
    "--leader-elect",
    "--leader-election-namespace=neonvm-system",
    "--lease-duration=60s",
    "--renew-deadline=45s",
    "--retry-period=2s",
    "--concurrency-limit=128",
    "--default-cpu-scaling-mode=QmpScaling",
    "--disable-runner-cgroup",
    "--memhp-auto-movable-ratio=401",
    "--qemu-disk-cache-settings=cache=none",
    "--metrics-bind-address=:8080",
    "--health-probe-bind-address=:8081",
  ], { VM_RUNNER_IMAGE: "localhost/neonvm-ts/runtime:dev" });
  assert.equal(c.leaseDurationMs, 60_000);
  assert.equal(c.renewDeadlineMs, 45_000);
  assert.equal(c.qemuDiskCacheSettings, "cache=none");
  assert.equal(c.leaderElectionNamespace, "neonvm-system");
  assert.deepEqual(c.runnerCapabilities, ["NET_ADMIN", "SYS_ADMIN", "SYS_RESOURCE"]);
});
