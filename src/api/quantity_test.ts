import assert from "node:assert/strict";
import fc from "fast-check";
import {
  BytesSchema,
  encodeBytes,
  encodeMilliCpu,
  encodeResources,
  GiB,
  MiB,
  MilliCpuSchema,
  parseBytes,
  parseMilliCpu,
  ResourcesSchema,
} from "./quantity.ts";

Deno.test("parseMilliCpu accepts every quantity form", () => {
  assert.equal(parseMilliCpu("250m"), 250);
  assert.equal(parseMilliCpu(0.25), 250);
  assert.equal(parseMilliCpu("0.25"), 250);
  assert.equal(parseMilliCpu(1), 1000);
  assert.equal(parseMilliCpu("2"), 2000);
  assert.equal(parseMilliCpu("1.5"), 1500);
  assert.equal(parseMilliCpu("1e-1"), 100);
  assert.equal(parseMilliCpu("1e3m"), undefined); // suffix and exponent never combine
  assert.equal(parseMilliCpu("100u"), 1); // rounds up like MilliValue()
  assert.equal(parseMilliCpu("abc"), undefined);
  assert.equal(parseMilliCpu(""), undefined);
});

Deno.test("parseBytes accepts binary, decimal and exponent suffixes", () => {
  assert.equal(parseBytes("1Gi"), GiB);
  assert.equal(parseBytes("1536Mi"), 1536 * MiB);
  assert.equal(parseBytes("1G"), 1e9);
  assert.equal(parseBytes("128974848"), 128974848);
  assert.equal(parseBytes("129e6"), 129e6);
  assert.equal(parseBytes(512), 512);
  assert.equal(parseBytes("0.5Gi"), GiB / 2);
  assert.equal(parseBytes("1Xi"), undefined);
});

Deno.test("encodings match the reference byte for byte", () => {
  assert.equal(JSON.stringify(encodeMilliCpu(2000)), "2");
  assert.equal(JSON.stringify(encodeMilliCpu(250)), '"250m"');
  assert.equal(JSON.stringify(encodeMilliCpu(1500)), '"1500m"');
  assert.equal(JSON.stringify(encodeBytes(512)), "512");
  assert.equal(JSON.stringify(encodeBytes(1024)), '"1Ki"');
  assert.equal(JSON.stringify(encodeBytes(4 * GiB)), '"4Gi"');
  assert.equal(JSON.stringify(encodeBytes(1536 * MiB)), '"1536Mi"');
  assert.equal(JSON.stringify(encodeBytes(1025)), '"1025"');
  assert.equal(
    JSON.stringify(encodeResources({ vCPUs: 250, mem: GiB })),
    '{"vCPUs":"250m","mem":"1Gi"}',
  );
});

Deno.test("schemas reject negative and malformed values with a path", () => {
  const r = ResourcesSchema.safeParse({ vCPUs: "-1", mem: "x" });
  assert.equal(r.success, false);
  const paths = r.error!.issues.map((i) => i.path.join("."));
  assert.deepEqual(paths.sort(), ["mem", "vCPUs"]);
});

Deno.test("property: MilliCPU and bytes round-trip through their wire encoding", () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 10_000_000 }), (m) => {
    assert.equal(MilliCpuSchema.parse(JSON.parse(JSON.stringify(encodeMilliCpu(m)))), m);
  }));
  fc.assert(fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (b) => {
    assert.equal(BytesSchema.parse(JSON.parse(JSON.stringify(encodeBytes(b)))), b);
  }));
});

Deno.test("property: quantity parsers never throw on arbitrary input", () => {
  fc.assert(fc.property(fc.oneof(fc.string(), fc.double()), (v) => {
    parseMilliCpu(v);
    parseBytes(v);
    ResourcesSchema.safeParse({ vCPUs: v, mem: v });
  }));
});
