/** Tests of the scaling-event line format. */
import assert from "node:assert/strict";
import { encodeScalingEvent, milliCu, ScalingEventSchema } from "./scaling_event.ts";

Deno.test("encodes in the reference's field order and round-trips through the schema", () => {
  const e = {
    timestamp: "2026-01-01T00:00:00.123Z",
    region: "local",
    endpoint_id: "ep-1",
    kind: "hypothetical" as const,
    current_cu: milliCu(2, 0.25),
    target_cu: milliCu(3, 0.25),
    goalComponents: { cpu: 0.5, mem: 0.75 },
  };
  const line = encodeScalingEvent(e);
  assert.equal(
    line,
    '{"timestamp":"2026-01-01T00:00:00.123Z","region":"local","endpoint_id":"ep-1",' +
      '"kind":"hypothetical","current_cu":500,"target_cu":750,"goalComponents":{"cpu":0.5,"mem":0.75}}',
  );
  assert.deepEqual(ScalingEventSchema.parse(JSON.parse(line)), e);
  assert.equal(
    encodeScalingEvent({ ...e, kind: "actual", goalComponents: undefined }).includes("goal"),
    false,
  );
});
