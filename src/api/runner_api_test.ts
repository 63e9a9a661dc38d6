/**
 * Tests of the runner API wire helpers.
 * @module
 */
import assert from "node:assert/strict";
import { gunzipSync } from "node:zlib";
import {
  decodeRunnerFlagJson,
  encodeRunnerFlagJson,
  encodeVCpus,
  VCpuChangeSchema,
} from "./runner_api.ts";

Deno.test("VCPUs wire encoding: integers for whole CPUs, else milli strings", () => {
  assert.deepEqual(encodeVCpus(2000), { VCPUs: 2 });
  assert.deepEqual(encodeVCpus(1500), { VCPUs: "1500m" });
  assert.equal(VCpuChangeSchema.parse({ VCPUs: "250m" }).VCPUs, 250);
  assert.equal(VCpuChangeSchema.parse({ VCPUs: 3 }).VCPUs, 3000);
  assert.equal(VCpuChangeSchema.parse({ VCPUs: 0.5 }).VCPUs, 500);
  assert.equal(VCpuChangeSchema.safeParse({ vcpus: 1 }).success, false);
});

Deno.test("flag JSON is gzip + base64 and round-trips", async () => {
  const v = { guest: { cpus: { min: 1, max: "1500m", use: 1 } }, qmp: 20183 };
  const enc = await encodeRunnerFlagJson(v);
  const bytes = Uint8Array.from(atob(enc), (c) => c.charCodeAt(0));
  assert.deepEqual(JSON.parse(new TextDecoder().decode(gunzipSync(bytes))), v);
  assert.deepEqual(await decodeRunnerFlagJson(enc), v);
  await assert.rejects(decodeRunnerFlagJson("not base64!!"));
});

Deno.test("property: the /cpu_change parser never throws and only accepts non-negative amounts", async () => {
  const fc = (await import("fast-check")).default;
  fc.assert(fc.property(fc.jsonValue(), (v) => {
    const r = VCpuChangeSchema.safeParse(v);
    if (r.success) assert.ok(Number.isInteger(r.data.VCPUs) && r.data.VCPUs >= 0);
  }));
  fc.assert(fc.property(fc.integer({ min: 0, max: 10_000_000 }), (m) => {
    assert.equal(VCpuChangeSchema.parse(encodeVCpus(m)).VCPUs, m);
  }));
});
