import assert from "node:assert/strict";
import fc from "fast-check";
import { parseOrThrow } from "./_parse.ts";
import {
  encodeRevisionWithTime,
  formatK8sTime,
  nextRevision,
  parseK8sTimeMs,
  REVISION_FLAG_DOWNSCALE,
  REVISION_FLAG_UPSCALE,
  revisionEquals,
  revisionWithTime,
  RevisionWithTimeSchema,
  ZERO_REVISION,
} from "./revision.ts";

Deno.test("RevisionWithTime encodes in the reference's field order", () => {
  const text = '{"revision":{"value":7,"flags":3},"updatedAt":"2025-09-23T10:11:12Z"}';
  const r = parseOrThrow(RevisionWithTimeSchema, JSON.parse(text), "revision");
  assert.equal(JSON.stringify(encodeRevisionWithTime(r)), text);
  assert.equal(r.revision.flags, REVISION_FLAG_UPSCALE | REVISION_FLAG_DOWNSCALE);
});

Deno.test("times are whole seconds in UTC with Z, as metav1.Time writes them", () => {
  assert.equal(formatK8sTime(Date.UTC(2025, 0, 2, 3, 4, 5, 999)), "2025-01-02T03:04:05Z");
  assert.equal(parseK8sTimeMs("2025-01-02T03:04:05Z"), Date.UTC(2025, 0, 2, 3, 4, 5));
  fc.assert(fc.property(fc.integer({ min: 0, max: 4e12 }), (ms) => {
    const t = formatK8sTime(ms);
    assert.equal(parseK8sTimeMs(t), Math.floor(ms / 1000) * 1000);
    assert.ok(RevisionWithTimeSchema.safeParse({ revision: ZERO_REVISION, updatedAt: t }).success);
  }));
});

Deno.test("nextRevision increments the value and carries the flags", () => {
  const r = nextRevision({ value: 4, flags: 1 }, REVISION_FLAG_DOWNSCALE);
  assert.deepEqual(r, { value: 5, flags: 2 });
  assert.ok(revisionEquals(r, { value: 5, flags: 2 }));
  assert.ok(!revisionEquals(r, { value: 5, flags: 1 }));
  assert.deepEqual(revisionWithTime(r, 0), {
    revision: { value: 5, flags: 2 },
    updatedAt: "1970-01-01T00:00:00Z",
  });
});
