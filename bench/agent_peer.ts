/**
 * Lightweight stand-in for many VMs, for bench/agent_bench.ts: one process serving Prometheus
 * text on the metrics port and a vm-monitor websocket on the monitor port for every VM address
 * (the agent dials <pod IP>:<port>; pod IPs are 127.x.y.z loopback addresses, so one listener on
 * 0.0.0.0 serves them all). The monitor side answers the handshake, echoes health checks,
 * confirms upscales and approves downscales. Prints one "ready" line on stdout.
 * Run: `deno run -A bench/agent_peer.ts --metrics-port=N --monitor-port=M`.
 * @module
 */
import { parseArgs } from "node:util";
import {
  encodeMonitorMessage,
  encodeVersionResponse,
  parseAgentMessage,
} from "../src/api/monitor_protocol.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { "metrics-port": { type: "string" }, "monitor-port": { type: "string" } },
});
const GiB = 1024 ** 3;
const METRICS = [
  "# TYPE host_load1 gauge",
  "host_load1 0.2",
  "# TYPE host_load5 gauge",
  "host_load5 0.2",
  "# TYPE host_memory_total_bytes gauge",
  `host_memory_total_bytes ${GiB}`,
  "# TYPE host_memory_available_bytes gauge",
  `host_memory_available_bytes ${GiB - 300 * 1024 * 1024}`,
  "# TYPE host_memory_cached_bytes gauge",
  "host_memory_cached_bytes 104857600",
  "",
].join("\n");

let scrapes = 0;
let frames = 0;
Deno.serve(
  { hostname: "0.0.0.0", port: Number(values["metrics-port"]), onListen: () => {} },
  () => {
    scrapes++;
    return new Response(METRICS, { headers: { "content-type": "text/plain; version=0.0.4" } });
  },
);
Deno.serve(
  { hostname: "0.0.0.0", port: Number(values["monitor-port"]), onListen: () => {} },
  (req) => {
    if (req.headers.get("upgrade") !== "websocket") {
      return new Response("websocket only", {
        status: 400,
      });
    }
    const { socket, response } = Deno.upgradeWebSocket(req);
    let handshaken = false;
    socket.onmessage = (ev) => {
      frames++;
      if (!handshaken) {
        handshaken = true;
        socket.send(encodeVersionResponse({ version: 1 }));
        return;
      }
      const m = parseAgentMessage(ev.data);
      if (!m.ok) return;
      switch (m.value.type) {
        case "HealthCheck":
          socket.send(encodeMonitorMessage({ type: "HealthCheck", id: m.value.id }));
          break;
        case "UpscaleNotification":
          socket.send(encodeMonitorMessage({ type: "UpscaleConfirmation", id: m.value.id }));
          break;
        case "DownscaleRequest":
          socket.send(
            encodeMonitorMessage({
              type: "DownscaleResult",
              Ok: true,
              Status: "ok",
              id: m.value.id,
            }),
          );
          break;
        default:
          break;
      }
    };
    return response;
  },
);
Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen: ({ port }) =>
    Deno.stdout.writeSync(
      new TextEncoder().encode(JSON.stringify({ ready: true, statsPort: port }) + "\n"),
    ),
}, () => Response.json({ scrapes, frames }));
