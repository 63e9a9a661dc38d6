/**
 * Scenario tests for the vm-monitor core on a hand-driven clock (`now` is just a number here):
 * LFC sizing, the upscale-request trigger and its rate limit, and downscale approval rules.
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { GiB, MiB } from "../../api/quantity.ts";
import {
  applied,
  checkUpscaleRequest,
  decideDownscale,
  DEFAULT_TIMING,
  describeSizing,
  initialState,
  type MonitorCoreConfig,
  type MonitorState,
  onSample,
  planUpscale,
  UNMANAGED_STATUS,
  upscaleRequestSent,
} from "./monitor_core.ts";
import { addSample, emptyWindow, summarize } from "./memory_window.ts";
import { DEFAULT_SIZING, lfcSizeBytes, sizingFor, thresholdBytes } from "./sizing.ts";

const cgroupOnly: MonitorCoreConfig = {
  sizing: DEFAULT_SIZING,
  managed: { cgroup: true, cgroupLimits: false, lfc: false },
  ...DEFAULT_TIMING,
};
const everything: MonitorCoreConfig = {
  ...cgroupOnly,
  managed: { cgroup: true, cgroupLimits: true, lfc: true },
};

function feed(state: MonitorState, fromMs: number, values: number[], stepMs = 100): MonitorState {
  let s = state;
  values.forEach((v, i) => {
    s = onSample(s, { atMs: fromMs + i * stepMs, nonReclaimableBytes: v, currentBytes: v });
  });
  return s;
}

Deno.test("LFC size follows the reference formula", () => {
  assert.equal(lfcSizeBytes(DEFAULT_SIZING, 640 * MiB), 0);
  assert.equal(lfcSizeBytes(DEFAULT_SIZING, 100 * MiB), 0);
  // 1 GiB: min((1024-640)/1.1, 768) MiB = 349.09 -> 349 MiB
  assert.equal(lfcSizeBytes(DEFAULT_SIZING, 1 * GiB), 349 * MiB);
  // 4 GiB: min(3456/1.1 = 3141.8, 3072) = 3072 MiB
  assert.equal(lfcSizeBytes(DEFAULT_SIZING, 4 * GiB), 3072 * MiB);
  // Always whole MiB and never more than 75 %.
  fc.assert(fc.property(fc.nat({ max: 2 ** 45 }), (total) => {
    const size = lfcSizeBytes(DEFAULT_SIZING, total);
    assert.equal(size % MiB, 0);
    assert.ok(size <= total * 0.75);
    assert.ok(size === 0 || total - size >= 640 * MiB);
  }));
});

Deno.test("limits: memory.max = usable - LFC, memory.high = max - 100 MiB, threshold 85 %", () => {
  const s = sizingFor(DEFAULT_SIZING, everything.managed, 4 * GiB - 100 * MiB, 2997 * MiB);
  assert.equal(s.memoryMaxBytes, (3996 - 2997) * MiB);
  assert.equal(s.memoryHighBytes, (3996 - 2997 - 100) * MiB);
  assert.equal(s.limitBytes, s.memoryHighBytes);
  assert.equal(s.thresholdBytes, Math.floor(899 * MiB * 0.85));
  const plain = sizingFor(DEFAULT_SIZING, cgroupOnly.managed, 1 * GiB, 0);
  assert.equal(plain.memoryHighBytes, undefined);
  assert.equal(plain.thresholdBytes, thresholdBytes(DEFAULT_SIZING, 1 * GiB));
});

Deno.test("window keeps the last 5 samples and ignores out-of-order ones", () => {
  let w = emptyWindow(5);
  for (let i = 0; i < 8; i++) {
    w = addSample(w, { atMs: i * 100, nonReclaimableBytes: i, currentBytes: 0 });
  }
  w = addSample(w, { atMs: 50, nonReclaimableBytes: 1000, currentBytes: 0 });
  assert.deepEqual(summarize(w), {
    avgNonReclaimableBytes: 5, // mean of 3..7
    count: 5,
    spanMs: 400,
    newestAtMs: 700,
    latestCurrentBytes: 0,
  });
});

Deno.test("fast allocation: UpscaleRequest due within 1 s of crossing 85 %, then 1/s", () => {
  let s = initialState(cgroupOnly, 1 * GiB, 0);
  const threshold = s.sizing.thresholdBytes;
  assert.equal(threshold, Math.floor(1 * GiB * 0.85));
  // Idle at 200 MiB for a second.
  s = feed(s, 0, Array(10).fill(200 * MiB));
  assert.deepEqual(checkUpscaleRequest(cgroupOnly, s, 900), {
    due: false,
    reason: "below_threshold",
  });
  // A fast allocation: usage jumps to 950 MiB at t=1000 (crossing the threshold).
  const crossingAt = 1000;
  let requestedAt: number | undefined;
  for (let t = crossingAt; t <= 3000; t += 100) {
    s = onSample(s, { atMs: t, nonReclaimableBytes: 950 * MiB, currentBytes: 960 * MiB });
    const check = checkUpscaleRequest(cgroupOnly, s, t);
    if (check.due) {
      requestedAt ??= t;
      s = upscaleRequestSent(s, t);
    }
  }
  assert.ok(requestedAt !== undefined, "an upscale request was due");
  assert.ok(requestedAt - crossingAt <= 1000, `requested ${requestedAt - crossingAt} ms after`);
  assert.equal(
    s.lastUpscaleRequestAtMs,
    requestedAt + 1000 * Math.floor((3000 - requestedAt) / 1000),
  );
  // Rate limit: not again within 1 s.
  const last = s.lastUpscaleRequestAtMs!;
  assert.deepEqual(checkUpscaleRequest(cgroupOnly, s, last + 999), {
    due: false,
    reason: "rate_limited",
  });
  assert.equal(checkUpscaleRequest(cgroupOnly, s, last + 1000).due, true);
  // After an upscale to 2 GiB the same usage is below the new threshold.
  s = applied(s, planUpscale(cgroupOnly, 2 * GiB));
  assert.deepEqual(checkUpscaleRequest(cgroupOnly, s, last + 2000), {
    due: false,
    reason: "below_threshold",
  });
});

Deno.test("no upscale requests without samples or without a cgroup", () => {
  const s = initialState(cgroupOnly, 1 * GiB, 0);
  assert.deepEqual(checkUpscaleRequest(cgroupOnly, s, 0), { due: false, reason: "no_samples" });
  const none: MonitorCoreConfig = {
    ...cgroupOnly,
    managed: { cgroup: false, cgroupLimits: false, lfc: false },
  };
  assert.deepEqual(checkUpscaleRequest(none, feed(s, 0, [2 * GiB, 2 * GiB]), 200), {
    due: false,
    reason: "unmanaged",
  });
});

Deno.test("downscale: unmanaged, not enough samples, stale stats, refused, approved", () => {
  const none: MonitorCoreConfig = {
    ...cgroupOnly,
    managed: { cgroup: false, cgroupLimits: false, lfc: false },
  };
  assert.deepEqual(decideDownscale(none, initialState(none, 4 * GiB, 0), 1 * GiB, 0), {
    kind: "approve_unmanaged",
    status: UNMANAGED_STATUS,
  });

  let s = initialState(cgroupOnly, 4 * GiB, 0);
  assert.deepEqual(decideDownscale(cgroupOnly, s, 2 * GiB, 0), {
    kind: "deny",
    status: "haven't received enough cgroup memory stats yet",
  });
  // No sample at all for more than 5 s after start: the cgroup is unreadable -> error.
  assert.equal(decideDownscale(cgroupOnly, s, 2 * GiB, 5_001).kind, "error");
  s = feed(s, 0, [700 * MiB]);
  assert.equal(decideDownscale(cgroupOnly, s, 2 * GiB, 100).kind, "deny");
  s = feed(s, 100, [700 * MiB, 700 * MiB, 700 * MiB, 700 * MiB]);
  // Stats older than 5 s: internal error.
  const stale = decideDownscale(cgroupOnly, s, 2 * GiB, 400 + 5001);
  assert.equal(stale.kind, "error");
  // 1 GiB target: usable 924 MiB, threshold 785.4 MiB < 700 + 100 MiB -> refused.
  const refused = decideDownscale(cgroupOnly, s, 1 * GiB, 500);
  assert.equal(refused.kind, "deny");
  assert.ok(refused.kind === "deny" && refused.status.includes("785 MiB (new threshold)"));
  // 1.5 GiB target: usable 1436 MiB, threshold 1220 MiB >= 800 MiB -> approved.
  const ok = decideDownscale(cgroupOnly, s, 1536 * MiB, 500);
  assert.equal(ok.kind, "approve");
  assert.ok(ok.kind === "approve" && ok.target.usableBytes === 1436 * MiB);
});

Deno.test("downscale with LFC and limits reserves the cache before checking usage", () => {
  let s = initialState(everything, 8 * GiB, 0);
  s = feed(s, 0, Array(5).fill(700 * MiB));
  // 4 GiB: usable 3996, LFC 2997, high 899 MiB, threshold 764 MiB < 700 + 100 MiB -> refused.
  const refused = decideDownscale(everything, s, 4 * GiB, 400);
  assert.equal(refused.kind, "deny");
  const ok = decideDownscale(everything, feed(s, 500, Array(5).fill(300 * MiB)), 4 * GiB, 900);
  assert.equal(ok.kind, "approve");
  if (ok.kind === "approve") {
    assert.equal(ok.target.lfcBytes, 2997 * MiB);
    assert.equal(
      describeSizing(everything, ok.target),
      "set file cache size to 2997 MiB; set cgroup memory.high to 899 MiB, of new max 999 MiB; " +
        "set upscale threshold to 764 MiB",
    );
  }
});

Deno.test("property: an approved downscale always leaves usage + 100 MiB under the threshold", () => {
  fc.assert(fc.property(
    fc.array(fc.nat({ max: 16 * 1024 }), { minLength: 2, maxLength: 10 }),
    fc.nat({ max: 16 * 1024 }),
    fc.boolean(),
    fc.boolean(),
    (usageMiB, targetMiB, limits, lfc) => {
      const cfg: MonitorCoreConfig = {
        ...cgroupOnly,
        managed: { cgroup: true, cgroupLimits: limits, lfc },
      };
      const s = feed(initialState(cfg, 16 * GiB, 0), 0, usageMiB.map((m) => m * MiB));
      const now = (usageMiB.length - 1) * 100;
      const d = decideDownscale(cfg, s, targetMiB * MiB, now);
      const avg = summarize(s.window).avgNonReclaimableBytes;
      if (d.kind === "approve") {
        assert.ok(d.target.thresholdBytes >= avg + 100 * MiB);
        if (d.target.memoryMaxBytes !== undefined) {
          assert.ok(d.target.memoryMaxBytes >= avg + 100 * MiB);
        }
      } else {
        assert.equal(d.kind, "deny");
      }
    },
  ));
});
