/**
 * Micro-benchmarks of the monitor protocol codec (`deno bench -A bench/monitor_protocol_bench.ts`):
 * parsing agent frames (valid and malformed), encoding monitor replies, and a downscale decision.
 * @module
 */
import {
  encodeAgentMessage,
  encodeMonitorMessage,
  parseAgentMessage,
  parseMonitorMessage,
} from "../src/api/monitor_protocol.ts";
import { GiB, MiB } from "../src/api/quantity.ts";
import {
  decideDownscale,
  DEFAULT_TIMING,
  initialState,
  type MonitorCoreConfig,
  onSample,
} from "../src/monitor/core/monitor_core.ts";
import { DEFAULT_SIZING } from "../src/monitor/core/sizing.ts";

const downscale = encodeAgentMessage({
  type: "DownscaleRequest",
  content: { target: { cpu: 0.5, mem: 2 * GiB } },
  id: 42,
});
const result = encodeMonitorMessage({ type: "DownscaleResult", Ok: true, Status: "ok", id: 42 });

Deno.bench("parseAgentMessage(DownscaleRequest)", () => {
  if (!parseAgentMessage(downscale).ok) throw new Error("unexpected");
});
Deno.bench("parseAgentMessage(bad JSON)", () => {
  if (parseAgentMessage("{nope").ok) throw new Error("unexpected");
});
Deno.bench("parseMonitorMessage(DownscaleResult)", () => {
  if (!parseMonitorMessage(result).ok) throw new Error("unexpected");
});
Deno.bench("encodeMonitorMessage(DownscaleResult)", () => {
  encodeMonitorMessage({ type: "DownscaleResult", Ok: false, Status: "no", id: 7 });
});

const cfg: MonitorCoreConfig = {
  sizing: DEFAULT_SIZING,
  managed: { cgroup: true, cgroupLimits: true, lfc: true },
  ...DEFAULT_TIMING,
};
let state = initialState(cfg, 8 * GiB, 0);
for (let i = 0; i < 5; i++) {
  state = onSample(state, { atMs: i * 100, nonReclaimableBytes: 700 * MiB, currentBytes: 0 });
}
Deno.bench("decideDownscale (5 samples, LFC + limits)", () => {
  decideDownscale(cfg, state, 4 * GiB, 500);
});
