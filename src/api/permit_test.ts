import assert from "node:assert/strict";
import fc from "fast-check";
import {
  type AgentRequest,
  AgentRequestSchema,
  CURRENT_PROTO_VERSION,
  encodeAgentRequest,
  encodePluginResponse,
  parseAgentRequest,
  parsePluginResponse,
  parseProtoVersionString,
  protoVersionString,
  validateAgentRequest,
} from "./permit.ts";
import { GiB, MiB } from "./quantity.ts";

const EXAMPLE = `{"protoVersion":7,"pod":{"namespace":"ns","name":"vm-pod-abc"},` +
  `"computeUnit":{"vCPUs":"250m","mem":"1Gi"},"resources":{"vCPUs":1,"mem":"4Gi"},` +
  `"lastPermit":{"vCPUs":"500m","mem":"2Gi"},"metrics":{"loadAvg1M":0.42}}`;

Deno.test("AgentRequest: reference example decodes and re-encodes byte for byte", () => {
  const r = parseAgentRequest(JSON.parse(EXAMPLE));
  assert.ok(r.ok);
  assert.deepEqual(r.value, {
    protoVersion: 7,
    pod: { namespace: "ns", name: "vm-pod-abc" },
    computeUnit: { vCPUs: 250, mem: GiB },
    resources: { vCPUs: 1000, mem: 4 * GiB },
    lastPermit: { vCPUs: 500, mem: 2 * GiB },
    metrics: { loadAvg1M: 0.42 },
  });
  assert.equal(JSON.stringify(encodeAgentRequest(r.value)), EXAMPLE);
});

Deno.test("AgentRequest: decoding accepts any quantity form and null/absent optionals", () => {
  const r = parseAgentRequest({
    protoVersion: 7,
    pod: { namespace: "a", name: "b" },
    computeUnit: { vCPUs: 0.25, mem: "1073741824" },
    resources: { vCPUs: "0.5", mem: 1536 * MiB },
  });
  assert.ok(r.ok);
  assert.equal(r.value.lastPermit, null);
  assert.equal(r.value.metrics, null);
  assert.deepEqual(encodeAgentRequest(r.value).computeUnit, { vCPUs: "250m", mem: "1Gi" });
  assert.deepEqual(encodeAgentRequest(r.value).resources, { vCPUs: "500m", mem: "1536Mi" });
});

Deno.test("AgentRequest: bad input gives a ParseError naming the path", () => {
  const r = parseAgentRequest({
    protoVersion: 7,
    pod: { namespace: "a", name: 3 },
    computeUnit: { vCPUs: "x", mem: "1Gi" },
    resources: { vCPUs: 1, mem: "1Gi" },
  });
  assert.ok(!r.ok);
  assert.equal(r.error.name, "ParseError");
  assert.deepEqual([...r.error.paths].sort(), ["computeUnit.vCPUs", "pod.name"]);
  assert.match(r.error.message, /pod\.name/);
});

Deno.test("PluginResponse: migrate omitted unless set; exact bytes", () => {
  assert.equal(
    JSON.stringify(encodePluginResponse({ permit: { vCPUs: 1250, mem: 4 * GiB } })),
    `{"permit":{"vCPUs":"1250m","mem":"4Gi"}}`,
  );
  assert.equal(
    JSON.stringify(encodePluginResponse({ permit: { vCPUs: 2000, mem: 512 }, migrate: {} })),
    `{"permit":{"vCPUs":2,"mem":512},"migrate":{}}`,
  );
  const r = parsePluginResponse({ permit: { vCPUs: 2, mem: "1Gi" }, migrate: {} });
  assert.ok(r.ok);
  assert.deepEqual(r.value, { permit: { vCPUs: 2000, mem: GiB }, migrate: {} });
  const r2 = parsePluginResponse({ permit: { vCPUs: 2, mem: "1Gi" }, migrate: null });
  assert.ok(r2.ok);
  assert.deepEqual(r2.value, { permit: { vCPUs: 2000, mem: GiB } });
});

Deno.test("version strings and validation messages", () => {
  assert.equal(protoVersionString(7), "v5.0");
  assert.equal(protoVersionString(1), "v1.0");
  assert.equal(protoVersionString(0), "<invalid: zero>");
  assert.equal(parseProtoVersionString("v4.0"), 6);
  assert.equal(parseProtoVersionString("v9.0"), undefined);
  const base: AgentRequest = {
    protoVersion: CURRENT_PROTO_VERSION,
    pod: { namespace: "n", name: "p" },
    computeUnit: { vCPUs: 250, mem: GiB },
    resources: { vCPUs: 250, mem: GiB },
    lastPermit: null,
    metrics: null,
  };
  assert.equal(validateAgentRequest(base), undefined);
  assert.equal(validateAgentRequest({ ...base, protoVersion: 0 }), "invalid protocol version");
  assert.equal(
    validateAgentRequest({ ...base, protoVersion: 6 }),
    "protocol version mismatch: need v5.0 but got v4.0",
  );
  assert.equal(
    validateAgentRequest({ ...base, computeUnit: { vCPUs: 0, mem: GiB } }),
    "computeUnit fields must be non-zero",
  );
});

const resourcesArb = fc.record({
  vCPUs: fc.integer({ min: 0, max: 1_000_000 }),
  mem: fc.integer({ min: 0, max: 2 ** 45 }),
});

Deno.test("property: AgentRequest encode → JSON → parse round-trips", () => {
  fc.assert(
    fc.property(
      fc.record({
        protoVersion: fc.integer({ min: 0, max: 10 }),
        pod: fc.record({ namespace: fc.string(), name: fc.string() }),
        computeUnit: resourcesArb,
        resources: resourcesArb,
        lastPermit: fc.option(resourcesArb, { nil: null }),
        metrics: fc.option(
          fc.record({ loadAvg1M: fc.double({ noNaN: true, noDefaultInfinity: true }) }, {
            noNullPrototype: true,
          }).map((m) => ({ loadAvg1M: m.loadAvg1M === 0 ? 0 : m.loadAvg1M })),
          { nil: null },
        ),
      }),
      (req) => {
        const wire = JSON.parse(JSON.stringify(encodeAgentRequest(req)));
        const back = parseAgentRequest(wire);
        assert.ok(back.ok);
        assert.deepEqual(back.value, JSON.parse(JSON.stringify(req)));
      },
    ),
    { numRuns: 500 },
  );
});

Deno.test("property: parsers never throw on arbitrary JSON", () => {
  fc.assert(
    fc.property(fc.jsonValue(), (v) => {
      const a = parseAgentRequest(v);
      const b = parsePluginResponse(v);
      if (!a.ok) assert.equal(a.error.name, "ParseError");
      if (!b.ok) assert.equal(b.error.name, "ParseError");
    }),
    { numRuns: 2000 },
  );
});

Deno.test("property: the fast AgentRequest path agrees with the zod schema", () => {
  const q = fc.oneof(
    fc.integer({ min: -5, max: 5000 }),
    fc.constantFrom("250m", "1Gi", "0.5", "4Gi", "1536Mi", "-1", "x", "", "1e3"),
  );
  const res = fc.oneof(
    fc.record({ vCPUs: q, mem: q }),
    fc.constant(null),
    fc.constant(undefined),
    fc.jsonValue(),
  );
  fc.assert(
    fc.property(
      fc.record({
        protoVersion: fc.oneof(fc.integer({ min: -1, max: 9 }), fc.double(), fc.string()),
        pod: fc.oneof(
          fc.record({ namespace: fc.string(), name: fc.string() }),
          fc.jsonValue(),
        ),
        computeUnit: res,
        resources: res,
        lastPermit: res,
        metrics: fc.oneof(
          fc.constant(null),
          fc.record({ loadAvg1M: fc.double({ noNaN: true }) }),
          fc.record({ loadAvg1M: fc.double({ noNaN: true }), loadAvg5M: fc.double() }),
          fc.jsonValue(),
        ),
      }, { requiredKeys: [] }),
      (input) => {
        const viaParser = parseAgentRequest(input);
        const viaZod = AgentRequestSchema.safeParse(input);
        assert.equal(viaParser.ok, viaZod.success, JSON.stringify(input));
        if (viaParser.ok && viaZod.success) assert.deepEqual(viaParser.value, viaZod.data);
      },
    ),
    { numRuns: 3000 },
  );
});
