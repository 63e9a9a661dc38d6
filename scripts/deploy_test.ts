/**
 * The configuration files shipped in deploy/ parse with the components' own schemas, so a deployed
 * component never starts with a config it would reject.
 */
import assert from "node:assert/strict";
import { AgentConfigSchema } from "../src/api/agent_config.ts";
import { parseSchedulerConfig } from "../src/api/scheduler_config.ts";

const root = new URL("../", import.meta.url);

Deno.test("deploy/agent/config.json is a valid agent config with the reference defaults", async () => {
  const raw: unknown = JSON.parse(
    await Deno.readTextFile(new URL("deploy/agent/config.json", root)),
  );
  const cfg = AgentConfigSchema.parse(raw);
  assert.equal(cfg.scheduler.schedulerName, "autoscale-scheduler");
  assert.equal(cfg.monitor.serverPort, 10301);
  assert.equal(cfg.scheduler.requestPort, 10299);
});

Deno.test("deploy/scheduler/autoscale-enforcer-config.json is a valid scheduler config", async () => {
  const raw: unknown = JSON.parse(
    await Deno.readTextFile(new URL("deploy/scheduler/autoscale-enforcer-config.json", root)),
  );
  const r = parseSchedulerConfig(raw);
  assert.ok(r.ok, r.ok ? "" : r.error.message);
  assert.equal(r.value.schedulerName, "autoscale-scheduler");
  assert.equal(r.value.watermark, 0.9);
});
