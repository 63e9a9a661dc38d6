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
