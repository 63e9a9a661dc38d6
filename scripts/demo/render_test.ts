import assert from "node:assert/strict";
import { GiB } from "../../src/api/quantity.ts";
import { renderStatus, renderTimelineSvg, type Sample, samplesToCsv, textTable } from "./render.ts";

Deno.test("status table shows quantities in wire form and reservation percentages", () => {
  const out = renderStatus(
    [{
      vm: "default/demo",
      phase: "Running",
      node: "node-1",
      cpuUseMilli: 250,
      cpuStatusMilli: 250,
      cpuApprovedMilli: 1000,
      memUseBytes: GiB,
      memStatusBytes: GiB,
      memApprovedBytes: 4 * GiB,
    }],
    [{
      node: "node-1",
      cpuReservedMilli: 1000,
      cpuTotalMilli: 2000,
      memReservedBytes: 4 * GiB,
      memTotalBytes: 16 * GiB,
    }],
  );
  const lines = out.split("\n");
  assert.match(lines[1]!, /^default\/demo\s+Running\s+node-1\s+250m\s+250m\s+1\s+1Gi\s+1Gi\s+4Gi$/);
  assert.match(out, /node-1\s+1\s+2\s+50%\s+4Gi\s+16Gi\s+25%/);
});

Deno.test("text table pads columns to the widest cell", () => {
  assert.equal(textTable(["A", "BB"], [["xxx", "y"]]), "A    BB\nxxx  y");
});

Deno.test("timeline CSV and SVG carry every sample", () => {
  const samples: Sample[] = [
    { tSec: 0, loadAvg1m: 0.1, memUsedBytes: GiB / 2, cpuMilli: 250, memBytes: GiB, stage: "idle" },
    {
      tSec: 10,
      loadAvg1m: 1.9,
      memUsedBytes: undefined,
      cpuMilli: 2000,
      memBytes: 2 * GiB,
      stage: "cpu-load",
    },
  ];
  const csv = samplesToCsv(samples).trim().split("\n");
  assert.equal(csv.length, 3);
  assert.equal(csv[2], "10.0,cpu-load,1.90,,2.00,2.000");
  const svg = renderTimelineSvg(samples, "demo <vm>");
  assert.match(svg, /^<svg /);
  assert.match(svg, /demo &lt;vm&gt;/);
  assert.equal((svg.match(/<path /g) ?? []).length, 4);
  assert.match(svg, />cpu-load</);
});
