/** Tests of the "stuck" rules (§3.6) on explicit timestamps. */
import assert from "node:assert/strict";
import { defaultAgentConfig } from "../../api/agent_config.ts";
import { newHealthRecord, recordFailure, stuckReasons } from "./health.ts";

const CFG = defaultAgentConfig();

Deno.test("startup grace, then silence, then recovery", () => {
  const h = newHealthRecord(0);
  assert.deepEqual(stuckReasons(h, CFG, 20_000), []);
  assert.deepEqual(stuckReasons(h, CFG, 20_001), [
    "no successful monitor communication since start",
  ]);
  const ok = { ...h, lastSuccessfulMonitorCommMs: 25_000 };
  assert.deepEqual(stuckReasons(ok, CFG, 45_000), []);
  assert.deepEqual(stuckReasons(ok, CFG, 45_001), ["monitor silent too long"]);
});

Deno.test("failure rates: >2 monitor, >5 scheduler, >2 NeonVM within 120 s", () => {
  let h = { ...newHealthRecord(0), lastSuccessfulMonitorCommMs: 110_000 };
  for (const t of [1000, 2000]) h = { ...h, failedNeonVmMs: recordFailure(h.failedNeonVmMs, t) };
  assert.deepEqual(stuckReasons(h, CFG, 100_000), []);
  h = { ...h, failedNeonVmMs: recordFailure(h.failedNeonVmMs, 3000) };
  assert.deepEqual(stuckReasons(h, CFG, 100_000), ["too many failed NeonVM requests"]);
  // The window slides: the first failure is older than 120 s at 121 001 ms.
  assert.deepEqual(stuckReasons(h, CFG, 121_001), []);
  for (let i = 0; i < 6; i++) {
    h = { ...h, failedSchedulerMs: recordFailure(h.failedSchedulerMs, 110_000 + i) };
  }
  assert.deepEqual(stuckReasons(h, CFG, 115_000), [
    "too many failed scheduler requests",
    "too many failed NeonVM requests",
  ]);
});
