import assert from "node:assert/strict";
import plugin from "./lint_plugin.ts";

function lint(filename: string, source: string): string[] {
  return Deno.lint.runPlugin(plugin, filename, source).map((d) => d.message);
}

Deno.test("core may not use clocks, timers, fetch or randomness", () => {
  const msgs = lint(
    "/repo/src/agent/core/state.ts",
    "export const a = Date.now(); export const b = Math.random(); fetch('x'); setTimeout(() => {}, 1); new Date();",
  );
  assert.equal(msgs.length, 5, msgs.join("\n"));
});

Deno.test("core may import api, errors, clock and itself only", () => {
  const ok = lint(
    "/repo/src/agent/core/state.ts",
    'import { x } from "../../api/quantity.ts"; import { y } from "../../lib/errors.ts"; import { z } from "./goal.ts";',
  );
  assert.deepEqual(ok, []);
  const bad = lint(
    "/repo/src/agent/core/state.ts",
    'import { x } from "../../lib/log.ts"; import { y } from "../io/k8s.ts"; import "node:fs";',
  );
  assert.equal(bad.length, 3, bad.join("\n"));
});

Deno.test("components never import each other and client-node stays in lib/k8s", () => {
  assert.equal(
    lint("/repo/src/agent/io/x.ts", 'import { a } from "../../scheduler/core/s.ts";').length,
    1,
  );
  assert.equal(
    lint("/repo/src/agent/io/x.ts", 'import * as k from "@kubernetes/client-node";').length,
    1,
  );
  assert.deepEqual(
    lint("/repo/src/lib/k8s/client.ts", 'import * as k from "@kubernetes/client-node";'),
    [],
  );
  assert.equal(lint("/repo/src/api/vm.ts", 'import { l } from "../lib/log.ts";').length, 1);
});

Deno.test("tests in core may use timers", () => {
  assert.deepEqual(lint("/repo/src/agent/core/state_test.ts", "setTimeout(() => {}, 1);"), []);
});
