/** Tests of the Prometheus text parser: real exporter output, escapes, garbage never throws. */
import assert from "node:assert/strict";
import fc from "fast-check";
import { parsePromText } from "./prom_text.ts";

Deno.test("parses vector host_metrics output with types, labels and timestamps", () => {
  const text = [
    "# HELP host_load1 load1",
    "# TYPE host_load1 gauge",
    'host_load1{collector="loadavg",host="vm"} 0.42 1700000000000',
    "# TYPE host_memory_total_bytes gauge",
    'host_memory_total_bytes{collector="memory"} 4.294967296e9',
    'lfc_approximate_working_set_size_windows{duration_seconds="60",x="a\\"b\\\\c\\nd"} +Inf',
    "weird_untyped NaN",
  ].join("\r\n");
  const r = parsePromText(text);
  assert.equal(r.badLines, 0);
  assert.equal(r.families.get("host_load1")?.type, "gauge");
  assert.deepEqual(r.families.get("host_load1")?.samples, [{
    labels: { collector: "loadavg", host: "vm" },
    value: 0.42,
  }]);
  assert.equal(r.families.get("host_memory_total_bytes")?.samples[0]?.value, 4294967296);
  const lfc = r.families.get("lfc_approximate_working_set_size_windows")?.samples[0];
  assert.deepEqual(lfc?.labels, { duration_seconds: "60", x: 'a"b\\c\nd' });
  assert.equal(lfc?.value, Infinity);
  assert.ok(Number.isNaN(r.families.get("weird_untyped")?.samples[0]?.value));
  assert.equal(r.families.get("weird_untyped")?.type, undefined);
});

Deno.test("bad lines are counted and skipped", () => {
  const r = parsePromText('ok 1\n{x="y"} 2\nbad{x=y} 3\nnum abc\nunterminated{x="y 4\nok2 5 6 7\n');
  assert.equal(r.badLines, 5);
  assert.deepEqual([...r.families.keys()], ["ok"]);
});

Deno.test("never throws on arbitrary input", () => {
  fc.assert(
    fc.property(fc.string({ unit: "binary", maxLength: 400 }), (s) => {
      const r = parsePromText(s);
      assert.ok(r.badLines >= 0);
    }),
    { numRuns: 500 },
  );
  fc.assert(
    fc.property(
      fc.array(
        fc.constantFrom("a", "{", "}", '"', "=", ",", " ", "1", "\\", "\n", "#", "TYPE", "e"),
      ),
      (parts) => {
        parsePromText(parts.join(""));
      },
    ),
    { numRuns: 500 },
  );
});
