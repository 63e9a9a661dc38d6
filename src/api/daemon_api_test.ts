/**
 * Tests of the neonvmd wire parsers.
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { DaemonFilesSchema, DaemonMilliCpuBodySchema, encodeDaemonMilliCpu } from "./daemon_api.ts";

Deno.test("milli-CPU bodies: decimal only, round-trip, never throw", () => {
  assert.equal(DaemonMilliCpuBodySchema.parse("2000\n"), 2000);
  for (const bad of ["", "1.5", "-1", "2e3", "0x10", "1000m"]) {
    assert.equal(DaemonMilliCpuBodySchema.safeParse(bad).success, false, bad);
  }
  fc.assert(fc.property(fc.string(), (s) => void DaemonMilliCpuBodySchema.safeParse(s)));
  fc.assert(fc.property(fc.integer({ min: 0, max: 999_999_999 }), (m) => {
    assert.equal(DaemonMilliCpuBodySchema.parse(encodeDaemonMilliCpu(m)), m);
  }));
});

Deno.test("file maps: base64 data, no path tricks", () => {
  assert.equal(DaemonFilesSchema.safeParse({ "tls.crt": { data: btoa("x") } }).success, true);
  assert.equal(DaemonFilesSchema.safeParse({ "a/b": { data: "" } }).success, false);
  assert.equal(DaemonFilesSchema.safeParse({ "..": { data: "" } }).success, false);
  assert.equal(DaemonFilesSchema.safeParse({ a: { data: "not base64!" } }).success, false);
  fc.assert(fc.property(fc.jsonValue(), (v) => void DaemonFilesSchema.safeParse(v)));
});
