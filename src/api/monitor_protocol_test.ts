/**
 * Tests for the agent ↔ vm-monitor protocol contract: exact wire bytes from the reference's
 * examples, round trips, the handshake, id parity, and (fast-check) parsers that never throw.
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  type AgentMessage,
  createIdMinter,
  encodeAgentMessage,
  encodeMonitorMessage,
  encodeVersionRange,
  encodeVersionResponse,
  isAgentId,
  isMonitorId,
  MAX_FRAME_BYTES,
  type MonitorMessage,
  negotiateVersion,
  parseAgentMessage,
  parseMonitorMessage,
  parseVersionRange,
  parseVersionResponse,
  toAllocation,
} from "./monitor_protocol.ts";

Deno.test("agent frames: exact Go bytes (content, type, id order)", () => {
  assert.equal(
    encodeAgentMessage({
      type: "DownscaleRequest",
      content: { target: { cpu: 0.25, mem: 1073741824 } },
      id: 2,
    }),
    '{"content":{"target":{"cpu":0.25,"mem":1073741824}},"type":"DownscaleRequest","id":2}',
  );
  assert.equal(
    encodeAgentMessage({
      type: "UpscaleNotification",
      content: { granted: { cpu: 2, mem: 4294967296 } },
      id: 4,
    }),
    '{"content":{"granted":{"cpu":2,"mem":4294967296}},"type":"UpscaleNotification","id":4}',
  );
  assert.equal(
    encodeAgentMessage({ type: "HealthCheck", content: {}, id: 6 }),
    '{"content":{},"type":"HealthCheck","id":6}',
  );
  // Go's encoding/json escapes <, > and & in strings.
  assert.equal(
    encodeAgentMessage({
      type: "InvalidMessage",
      content: { error: 'Received message of unknown type: "X<&>"' },
      id: 3,
    }),
    '{"content":{"error":"Received message of unknown type: \\"X\\u003c\\u0026\\u003e\\""},' +
      '"type":"InvalidMessage","id":3}',
  );
});

Deno.test("encoders refuse values that would not be valid wire JSON", () => {
  const bad = [
    { cpu: Number.NaN, mem: 1 },
    { cpu: 1, mem: 1.5 },
    { cpu: -1, mem: 1 },
    { cpu: 1, mem: undefined as unknown as number },
  ];
  for (const target of bad) {
    assert.throws(
      () => encodeAgentMessage({ type: "DownscaleRequest", content: { target }, id: 2 }),
      RangeError,
    );
  }
  assert.throws(() => encodeAgentMessage({ type: "HealthCheck", content: {}, id: -2 }), RangeError);
  assert.throws(() => encodeMonitorMessage({ type: "HealthCheck", id: 2 ** 60 }), RangeError);
});

Deno.test("monitor frames: exact Rust bytes (flattened payload, capitalised Ok/Status)", () => {
  assert.equal(
    encodeMonitorMessage({ type: "DownscaleResult", Ok: true, Status: "ok", id: 4 }),
    '{"type":"DownscaleResult","Ok":true,"Status":"ok","id":4}',
  );
  assert.equal(
    encodeMonitorMessage({ type: "UpscaleRequest", id: 3 }),
    '{"type":"UpscaleRequest","id":3}',
  );
  assert.equal(
    encodeMonitorMessage({ type: "UpscaleConfirmation", id: 8 }),
    '{"type":"UpscaleConfirmation","id":8}',
  );
  assert.equal(
    encodeMonitorMessage({ type: "HealthCheck", id: 10 }),
    '{"type":"HealthCheck","id":10}',
  );
  assert.equal(
    encodeMonitorMessage({ type: "InternalError", error: "boom <x>", id: 12 }),
    '{"type":"InternalError","error":"boom <x>","id":12}',
  );
});

Deno.test("handshake: range, reply and negotiation", () => {
  assert.equal(encodeVersionRange({ min: 1, max: 1 }), '{"min":1,"max":1}');
  assert.equal(encodeVersionResponse({ version: 1 }), '{"version":1}');
  assert.equal(encodeVersionResponse({ error: "no" }), '{"error":"no"}');
  assert.deepEqual(negotiateVersion({ min: 1, max: 1 }), { version: 1 });
  assert.deepEqual(negotiateVersion({ min: 1, max: 7 }), { version: 1 });
  const tooNew = negotiateVersion({ min: 2, max: 3 });
  assert.ok("error" in tooNew && tooNew.error.includes("Non-overlapping"));
  assert.deepEqual(parseVersionRange('{"min":1,"max":1}'), { ok: true, value: { min: 1, max: 1 } });
  // Version 0 is invalid; min > max is invalid; missing fields are invalid.
  assert.equal(parseVersionRange('{"min":0,"max":1}').ok, false);
  assert.equal(parseVersionRange('{"min":2,"max":1}').ok, false);
  assert.equal(parseVersionRange('{"min":1}').ok, false);
  assert.deepEqual(parseVersionResponse('{"version":1}'), { ok: true, value: { version: 1 } });
  assert.deepEqual(parseVersionResponse('{"error":"x"}'), { ok: true, value: { error: "x" } });
  assert.equal(parseVersionResponse('{"version":1,"error":"x"}').ok, false);
  assert.equal(parseVersionResponse("[]").ok, false);
});

Deno.test("parse agent frames: accepts Go's trailing newline, names each failure", () => {
  const ok = parseAgentMessage(
    '{"content":{"target":{"cpu":0.5,"mem":2147483648}},"type":"DownscaleRequest","id":2}\n',
  );
  assert.deepEqual(ok, {
    ok: true,
    value: { type: "DownscaleRequest", content: { target: { cpu: 0.5, mem: 2147483648 } }, id: 2 },
  });
  const cases: [unknown, string, number | undefined][] = [
    ["{nope", "json", undefined],
    ["[1,2]", "envelope", undefined],
    ['{"content":{},"id":2}', "envelope", 2],
    ['{"content":{},"type":"HealthCheck"}', "envelope", undefined],
    ['{"content":{},"type":"HealthCheck","id":-2}', "envelope", undefined],
    ['{"content":{},"type":"HealthCheck","id":2.5}', "envelope", undefined],
    ['{"content":{},"type":"UpscaleRequest","id":2}', "unknown_type", 2],
    ['{"content":{},"type":"toString","id":2}', "unknown_type", 2],
    ['{"content":{},"type":"DownscaleRequest","id":4}', "payload", 4],
    ['{"type":"HealthCheck","id":4}', "payload", 4],
    ['{"content":{"target":{"cpu":-1,"mem":1}},"type":"DownscaleRequest","id":6}', "payload", 6],
    ['{"content":{"target":{"cpu":1,"mem":1.5}},"type":"DownscaleRequest","id":6}', "payload", 6],
    [new Uint8Array([123, 125]), "binary", undefined],
    ["x".repeat(MAX_FRAME_BYTES + 1), "too_large", undefined],
    ["\u00e9".repeat(MAX_FRAME_BYTES / 2 + 1), "too_large", undefined],
    [42, "json", undefined],
  ];
  for (const [input, kind, id] of cases) {
    const r = parseAgentMessage(input);
    assert.equal(r.ok, false, String(input).slice(0, 80));
    if (!r.ok) {
      assert.equal(r.kind, kind, String(input).slice(0, 80));
      assert.equal(r.id, id, String(input).slice(0, 80));
      assert.ok(r.error.length > 0);
    }
  }
  // A frame exactly at the limit is not rejected for size.
  const padded = '{"content":{},"type":"HealthCheck","id":2}'.padEnd(MAX_FRAME_BYTES, " ");
  assert.equal(parseAgentMessage(padded).ok, true);
});

Deno.test("parse monitor frames: flattened payloads; agent-only types are unknown", () => {
  assert.deepEqual(
    parseMonitorMessage('{"type":"DownscaleResult","Ok":false,"Status":"no","id":2}'),
    {
      ok: true,
      value: { type: "DownscaleResult", Ok: false, Status: "no", id: 2 },
    },
  );
  const r = parseMonitorMessage('{"type":"DownscaleRequest","id":3}');
  assert.ok(!r.ok && r.kind === "unknown_type" && r.type === "DownscaleRequest" && r.id === 3);
  const lower = parseMonitorMessage('{"type":"DownscaleResult","ok":true,"status":"x","id":2}');
  assert.ok(!lower.ok && lower.kind === "payload");
});

Deno.test("ids: agent even from 2, monitor odd from 3", () => {
  const a = createIdMinter("agent");
  const m = createIdMinter("monitor");
  assert.deepEqual([a(), a(), a()], [2, 4, 6]);
  assert.deepEqual([m(), m(), m()], [3, 5, 7]);
  assert.ok(isAgentId(2) && !isAgentId(3) && isMonitorId(3) && !isMonitorId(4));
  assert.deepEqual(toAllocation(250, 1024), { cpu: 0.25, mem: 1024 });
});

const allocationArb = fc.record({
  cpu: fc.double({ min: 0, max: 1e6, noNaN: true, noDefaultInfinity: true }).map((x) =>
    Object.is(x, -0) ? 0 : x
  ),
  mem: fc.nat({ max: Number.MAX_SAFE_INTEGER }),
});
const idArb = fc.nat({ max: Number.MAX_SAFE_INTEGER });
const agentMessageArb: fc.Arbitrary<AgentMessage> = fc.oneof(
  fc.record({
    type: fc.constant("DownscaleRequest" as const),
    content: fc.record({ target: allocationArb }),
    id: idArb,
  }),
  fc.record({
    type: fc.constant("UpscaleNotification" as const),
    content: fc.record({ granted: allocationArb }),
    id: idArb,
  }),
  fc.record({ type: fc.constant("HealthCheck" as const), content: fc.constant({}), id: idArb }),
  fc.record({
    type: fc.constantFrom("InvalidMessage" as const, "InternalError" as const),
    content: fc.record({ error: fc.string({ unit: "grapheme" }) }),
    id: idArb,
  }),
);
const monitorMessageArb: fc.Arbitrary<MonitorMessage> = fc.oneof(
  fc.record({
    type: fc.constant("DownscaleResult" as const),
    Ok: fc.boolean(),
    Status: fc.string({ unit: "grapheme" }),
    id: idArb,
  }),
  fc.record({
    type: fc.constantFrom(
      "UpscaleConfirmation" as const,
      "UpscaleRequest" as const,
      "HealthCheck" as const,
    ),
    id: idArb,
  }),
  fc.record({
    type: fc.constantFrom("InvalidMessage" as const, "InternalError" as const),
    error: fc.string({ unit: "grapheme" }),
    id: idArb,
  }),
);

/** fast-check builds null-prototype records; compare against plain objects. */
function plain<T>(value: T): T {
  return JSON.parse(JSON.stringify(value));
}

Deno.test("property: agent messages round-trip and decode to the same JSON", () => {
  fc.assert(fc.property(agentMessageArb, (generated) => {
    const msg = plain(generated);
    const text = encodeAgentMessage(msg);
    assert.deepEqual(JSON.parse(text), msg);
    assert.deepEqual(Object.keys(JSON.parse(text)), ["content", "type", "id"]);
    assert.deepEqual(parseAgentMessage(text), { ok: true, value: msg });
  }));
});

Deno.test("property: monitor messages round-trip; bytes equal JSON.stringify in wire order", () => {
  fc.assert(fc.property(monitorMessageArb, (generated) => {
    const msg = plain(generated);
    const text = encodeMonitorMessage(msg);
    const { type, id, ...rest } = msg;
    assert.equal(text, JSON.stringify({ type, ...rest, id }));
    assert.deepEqual(parseMonitorMessage(text), { ok: true, value: msg });
  }));
});

Deno.test("property: parsers never throw on arbitrary strings, JSON values or bytes", () => {
  const parsers = [parseAgentMessage, parseMonitorMessage, parseVersionRange, parseVersionResponse];
  const inputs = fc.oneof(
    fc.string({ unit: "binary" }),
    fc.json(),
    fc.jsonValue().map((v) => JSON.stringify({ content: v, type: "DownscaleRequest", id: 2 })),
    fc.jsonValue().map((v) => JSON.stringify({ type: "DownscaleResult", Ok: v, id: v })),
    fc.uint8Array(),
    fc.anything(),
  );
  fc.assert(
    fc.property(inputs, (input) => {
      for (const p of parsers) {
        const r = p(input);
        assert.equal(typeof r.ok, "boolean");
        if (!r.ok) assert.equal(typeof r.error, "string");
      }
    }),
    { numRuns: 2000 },
  );
});
