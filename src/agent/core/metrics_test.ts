/** Tests of SystemMetrics/LfcMetrics extraction: both naming schemes, rejections, never throws. */
import assert from "node:assert/strict";
import fc from "fast-check";
import { GiB, MiB } from "../../api/quantity.ts";
import { extractLfcMetrics, extractSystemMetrics } from "./metrics.ts";
import { parsePromText } from "./prom_text.ts";

const HOST = `# TYPE host_load1 gauge
host_load1{collector="loadavg"} 1.5
# TYPE host_load5 gauge
host_load5 0.5
# TYPE host_memory_total_bytes gauge
host_memory_total_bytes 4294967296
# TYPE host_memory_available_bytes gauge
host_memory_available_bytes 3221225472
# TYPE host_memory_cached_bytes gauge
host_memory_cached_bytes 536870912
`;

const NODE = `# TYPE node_load1 gauge
node_load1 1.5
# TYPE node_load5 gauge
node_load5 0.5
# TYPE node_memory_MemTotal_bytes gauge
node_memory_MemTotal_bytes 4.294967296e+09
# TYPE node_memory_MemAvailable_bytes gauge
node_memory_MemAvailable_bytes 3.221225472e+09
# TYPE node_memory_Cached_bytes gauge
node_memory_Cached_bytes 5.36870912e+08
`;

const EXPECTED = {
  loadAverage1Min: 1.5,
  loadAverage5Min: 0.5,
  memoryUsageBytes: GiB + 100 * MiB,
  memoryCachedBytes: 512 * MiB,
};

Deno.test("vector host_* and node_exporter node_* give the same SystemMetrics", () => {
  assert.deepEqual(extractSystemMetrics(parsePromText(HOST)), { ok: true, value: EXPECTED });
  assert.deepEqual(extractSystemMetrics(parsePromText(NODE)), { ok: true, value: EXPECTED });
});

Deno.test("missing, duplicated or counter-typed metrics reject the scrape", () => {
  const missing = extractSystemMetrics(parsePromText(HOST.replace(/host_load5 0.5/, "")));
  assert.deepEqual(missing, { ok: false, error: "missing metric host_load5 or node_load5" });
  const dup = extractSystemMetrics(parsePromText(HOST + 'host_load1{cpu="1"} 2\n'));
  assert.deepEqual(dup, { ok: false, error: "host_load1: expected 1 sample, got 2" });
  const counter = extractSystemMetrics(
    parsePromText(HOST.replace("# TYPE host_load1 gauge", "# TYPE host_load1 counter")),
  );
  assert.deepEqual(counter, { ok: false, error: "host_load1: expected a gauge, got counter" });
});

Deno.test("LFC windows must be 60, 120, 180 … seconds", () => {
  const lfc = (windows: number[]) =>
    `lfc_hits 1\nlfc_misses 2\nlfc_writes 3\n` +
    windows.map((w, i) =>
      `lfc_approximate_working_set_size_windows{duration_seconds="${w}"} ${i * 10}`
    ).join("\n");
  assert.deepEqual(extractLfcMetrics(parsePromText(lfc([120, 60, 180]))), {
    ok: true,
    value: {
      cacheHitsTotal: 1,
      cacheMissesTotal: 2,
      cacheWritesTotal: 3,
      approximateWorkingSetSizeBuckets: [10, 0, 20],
    },
  });
  assert.equal(extractLfcMetrics(parsePromText(lfc([60, 180]))).ok, false);
  assert.equal(extractLfcMetrics(parsePromText(lfc([30, 60]))).ok, false);
});

Deno.test("extraction never throws on arbitrary scrape text", () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 300 }), (s) => {
      extractSystemMetrics(parsePromText(s));
      extractLfcMetrics(parsePromText(s));
    }),
    { numRuns: 300 },
  );
});
