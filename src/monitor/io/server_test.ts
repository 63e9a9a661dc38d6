/**
 * In-process tests of the monitor's websocket endpoint over loopback with a real WebSocket client:
 * the handshake, every malformed or unexpected frame getting its protocol reply with the
 * connection and state surviving, downscale refusal, upscale requests, internal errors and
 * connection replacement. Time is a FakeClock; samples are fed by hand.
 * @module
 */
import assert from "node:assert/strict";
import {
  encodeAgentMessage,
  MAX_FRAME_BYTES,
  parseMonitorMessage,
} from "../../api/monitor_protocol.ts";
import { GiB, MiB } from "../../api/quantity.ts";
import { FakeClock } from "../../lib/clock.ts";
import { memoryLogger } from "../../lib/log.ts";
import { DEFAULT_TIMING, type MonitorCoreConfig } from "../core/monitor_core.ts";
import { DEFAULT_SIZING, type Managed } from "../core/sizing.ts";
import { FakeFileCache, QueueClient } from "./_fakes.ts";
import { MonitorServer } from "./server.ts";
import { MonitorService } from "./service.ts";

interface Fixture extends AsyncDisposable {
  clock: FakeClock;
  service: MonitorService;
  server: MonitorServer;
  url: string;
  fileCache: FakeFileCache;
  clients: QueueClient[];
  connect(handshake?: string): Promise<QueueClient>;
  feed(anonMiB: number, count: number): Promise<void>;
}

async function fixture(
  managed: Managed = { cgroup: true, cgroupLimits: false, lfc: false },
): Promise<Fixture> {
  const clock = new FakeClock(1_000_000);
  const logger = memoryLogger();
  const config: MonitorCoreConfig = { sizing: DEFAULT_SIZING, managed, ...DEFAULT_TIMING };
  const fileCache = new FakeFileCache();
  const service = new MonitorService({ config, clock, logger, fileCache }, 4 * GiB);
  await service.start();
  const server = new MonitorServer({ service, clock, logger });
  const http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, server.handler);
  const url = `ws://127.0.0.1:${http.addr.port}/monitor`;
  const clients: QueueClient[] = [];
  return {
    clock,
    service,
    server,
    url,
    fileCache,
    clients,
    async connect(handshake = '{"min":1,"max":1}') {
      const c = new QueueClient(url);
      clients.push(c);
      await c.opened();
      c.send(handshake);
      return c;
    },
    async feed(anonMiB, count) {
      for (let i = 0; i < count; i++) {
        await clock.advance(100);
        service.recordSample({ nonReclaimableBytes: anonMiB * MiB, currentBytes: anonMiB * MiB });
      }
    },
    async [Symbol.asyncDispose]() {
      server.close();
      await Promise.all(clients.map((c) => c.close()));
      await http.shutdown();
    },
  };
}

async function ready(f: Fixture): Promise<QueueClient> {
  const c = await f.connect();
  assert.equal(await c.next(), '{"version":1}');
  return c;
}

function reply(text: string) {
  const r = parseMonitorMessage(text);
  assert.ok(r.ok, `monitor sent an unparseable frame: ${text}`);
  return r.value;
}

Deno.test("handshake: v1.0 accepted; bad or incompatible ranges get an error and close 1002", async () => {
  await using f = await fixture();
  await ready(f);
  for (const bad of ['{"min":2,"max":3}', "not json", '{"min":0,"max":1}', '{"max":1}']) {
    const c = await f.connect(bad);
    const text = await c.next();
    assert.match(text, /^\{"error":".+"\}$/, bad);
    await c.closedPromise;
    assert.equal(c.closeInfo()?.code, 1002, bad);
  }
});

Deno.test("handshake times out after 4 s of silence", async () => {
  await using f = await fixture();
  const c = new QueueClient(f.url);
  f.clients.push(c);
  await c.opened();
  // Let the server see the open before moving fake time.
  await new Promise((r) => setTimeout(r, 20));
  await f.clock.advance(3_999);
  assert.equal(c.closed, undefined);
  await f.clock.advance(1);
  await c.closedPromise;
  assert.equal(c.closeInfo()?.code, 1002);
});

Deno.test("malformed and unexpected frames get InvalidMessage; connection and state survive", async () => {
  await using f = await fixture();
  await f.feed(700, 5);
  const c = await ready(f);
  const cases: [string | Uint8Array, number, RegExp][] = [
    ["{not json", 0, /not valid JSON/],
    ["[1,2,3]", 0, /not a JSON object/],
    ['{"content":{},"id":8}', 8, /no string field "type"/],
    ['{"content":{},"type":"HealthCheck"}', 0, /no valid "id"/],
    ['{"content":{},"type":"HealthCheck","id":-4}', 0, /no valid "id"/],
    ['{"content":{},"type":"Bogus","id":10}', 10, /unknown type: "Bogus"/],
    ['{"content":{},"type":"UpscaleRequest","id":12}', 12, /unknown type: "UpscaleRequest"/],
    ['{"content":{},"type":"DownscaleRequest","id":14}', 14, /error unmarshaling DownscaleRequest/],
    ['{"type":"HealthCheck","id":16}', 16, /missing field "content"/],
    [
      '{"content":{"granted":{"cpu":"1","mem":1}},"type":"UpscaleNotification","id":18}',
      18,
      /granted\.cpu/,
    ],
    ['{"content":{},"type":"HealthCheck","id":21}', 21, /ids must be even/],
    [new TextEncoder().encode('{"content":{},"type":"HealthCheck","id":2}'), 0, /binary/],
    ["x".repeat(MAX_FRAME_BYTES + 10), 0, /exceeds the limit/],
  ];
  for (const [frame, id, pattern] of cases) {
    c.send(frame);
    const msg = reply(await c.next());
    assert.equal(msg.type, "InvalidMessage", String(frame).slice(0, 60));
    assert.equal(msg.id, id, String(frame).slice(0, 60));
    assert.ok(
      msg.type === "InvalidMessage" && pattern.test(msg.error),
      msg.type === "InvalidMessage" ? msg.error : "",
    );
  }
  // The agent's own error reports are logged, never answered (no error ping-pong).
  c.send(encodeAgentMessage({ type: "InvalidMessage", content: { error: "x" }, id: 3 }));
  c.send(encodeAgentMessage({ type: "InternalError", content: { error: "y" }, id: 4 }));
  c.send('{"content":{"error":5},"type":"InvalidMessage","id":5}');
  // Still connected, still answering, and the samples are still there.
  c.send(encodeAgentMessage({ type: "HealthCheck", content: {}, id: 100 }));
  assert.deepEqual(reply(await c.next()), { type: "HealthCheck", id: 100 });
  c.send(encodeAgentMessage({
    type: "DownscaleRequest",
    content: { target: { cpu: 0.25, mem: 1 * GiB } },
    id: 102,
  }));
  const denied = reply(await c.next());
  assert.ok(denied.type === "DownscaleResult" && !denied.Ok && denied.id === 102);
  assert.equal(f.server.stats.invalidMessages, cases.length);
  assert.equal(c.closed, undefined);
});

Deno.test("downscale below usage + 100 MiB is refused; above it is approved and applied", async () => {
  await using f = await fixture({ cgroup: true, cgroupLimits: false, lfc: true });
  const c = await ready(f);
  // Before enough samples: refused.
  c.send(encodeAgentMessage({
    type: "DownscaleRequest",
    content: { target: { cpu: 1, mem: 3 * GiB } },
    id: 2,
  }));
  assert.deepEqual(reply(await c.next()), {
    type: "DownscaleResult",
    Ok: false,
    Status: "haven't received enough cgroup memory stats yet",
    id: 2,
  });
  await f.feed(900, 5);
  // 1 GiB: threshold 785 MiB < 900 + 100 MiB.
  c.send(encodeAgentMessage({
    type: "DownscaleRequest",
    content: { target: { cpu: 0.25, mem: 1 * GiB } },
    id: 4,
  }));
  const refused = reply(await c.next());
  assert.ok(refused.type === "DownscaleResult" && !refused.Ok, JSON.stringify(refused));
  assert.match(refused.Status, /785 MiB \(new threshold\) < 900 MiB \(current usage\) \+ 100 MiB/);
  const setsBefore = f.fileCache.sets.length;
  // 2 GiB: usable 1948 MiB, threshold 1655 MiB >= 1000 MiB: approved; LFC resized.
  c.send(encodeAgentMessage({
    type: "DownscaleRequest",
    content: { target: { cpu: 0.5, mem: 2 * GiB } },
    id: 6,
  }));
  const ok = reply(await c.next());
  assert.ok(ok.type === "DownscaleResult" && ok.Ok && ok.id === 6, JSON.stringify(ok));
  assert.equal(f.fileCache.sets.length, setsBefore + 1);
  assert.equal(f.fileCache.sizeBytes, 1189 * MiB); // min((1948-640)/1.1, 0.75*1948) = 1189.09
  assert.match(ok.Status, /set file cache size to 1189 MiB/);
  // Stats go stale after 5 s without samples: InternalError with the request's id.
  await f.clock.advance(5_001);
  c.send(encodeAgentMessage({
    type: "DownscaleRequest",
    content: { target: { cpu: 0.5, mem: 2 * GiB } },
    id: 8,
  }));
  const stale = reply(await c.next());
  assert.ok(stale.type === "InternalError" && stale.id === 8, JSON.stringify(stale));
});

Deno.test("UpscaleRequest on crossing 85 % (odd ids, 1/s); UpscaleNotification confirmed", async () => {
  await using f = await fixture();
  const c = await ready(f);
  await f.feed(1000, 10);
  assert.equal(f.service.stats.upscaleRequests, 0);
  // 4 GiB MemTotal: threshold 3481.6 MiB. Jump to 3600 MiB.
  await f.feed(3600, 1);
  await f.feed(3600, 1);
  await f.feed(3600, 1);
  await f.feed(3600, 1);
  // Mean of last 5 = (1000 + 4*3600)/5 = 3080: not yet.
  assert.equal(f.service.stats.upscaleRequests, 0);
  await f.feed(3600, 1); // mean 3600 >= 3481: request, 500 ms after crossing.
  assert.deepEqual(reply(await c.next()), { type: "UpscaleRequest", id: 3 });
  await f.feed(3600, 9); // 900 ms later: rate limited.
  assert.equal(f.service.stats.upscaleRequests, 1);
  await f.feed(3600, 1); // 1 s later: again.
  assert.deepEqual(reply(await c.next()), { type: "UpscaleRequest", id: 5 });
  c.send(encodeAgentMessage({
    type: "UpscaleNotification",
    content: { granted: { cpu: 2, mem: 8 * GiB } },
    id: 2,
  }));
  assert.deepEqual(reply(await c.next()), { type: "UpscaleConfirmation", id: 2 });
  await f.feed(3600, 20);
  assert.equal(f.service.stats.upscaleRequests, 2, "no more requests after the upscale");
  c.send(encodeAgentMessage({ type: "HealthCheck", content: {}, id: 4 }));
  assert.deepEqual(reply(await c.next()), { type: "HealthCheck", id: 4 }, "nothing queued before");
});

Deno.test("failures applying an upscale become InternalError with the request id", async () => {
  await using f = await fixture({ cgroup: true, cgroupLimits: false, lfc: true });
  const c = await ready(f);
  f.fileCache.failWith = new Error("psql failed (exit 2): connection refused");
  c.send(encodeAgentMessage({
    type: "UpscaleNotification",
    content: { granted: { cpu: 2, mem: 8 * GiB } },
    id: 2,
  }));
  const err = reply(await c.next());
  assert.ok(err.type === "InternalError" && err.id === 2 && /connection refused/.test(err.error));
  f.fileCache.failWith = undefined;
  c.send(encodeAgentMessage({
    type: "UpscaleNotification",
    content: { granted: { cpu: 2, mem: 8 * GiB } },
    id: 4,
  }));
  assert.deepEqual(reply(await c.next()), { type: "UpscaleConfirmation", id: 4 });
});

Deno.test("a new connection replaces the old one; requests go to the new one", async () => {
  await using f = await fixture();
  const first = await ready(f);
  const second = await ready(f);
  await first.closedPromise;
  assert.equal(first.closeInfo()?.code, 1000);
  assert.equal(f.server.stats.replaced, 1);
  second.send(encodeAgentMessage({ type: "HealthCheck", content: {}, id: 2 }));
  assert.deepEqual(reply(await second.next()), { type: "HealthCheck", id: 2 });
  await f.feed(3900, 5);
  assert.equal(reply(await second.next()).type, "UpscaleRequest");
});

Deno.test("unmanaged monitor approves every downscale with the reference status", async () => {
  await using f = await fixture({ cgroup: false, cgroupLimits: false, lfc: false });
  const c = await ready(f);
  c.send(encodeAgentMessage({
    type: "DownscaleRequest",
    content: { target: { cpu: 0.25, mem: 256 * MiB } },
    id: 2,
  }));
  assert.equal(
    await c.next(),
    '{"type":"DownscaleResult","Ok":true,"Status":"monitor is not managing cgroup or file cache","id":2}',
  );
});

Deno.test("plain HTTP: 404 off-path, 426 without upgrade, 400 for a malformed upgrade", async () => {
  await using f = await fixture();
  const base = f.url.replace("ws://", "http://");
  const r1 = await fetch(base.replace("/monitor", "/other"));
  assert.equal(r1.status, 404);
  await r1.body?.cancel();
  const r2 = await fetch(base);
  assert.equal(r2.status, 426);
  await r2.body?.cancel();
  const r3 = await fetch(base, { headers: { upgrade: "websocket", connection: "upgrade" } });
  assert.equal(r3.status, 400);
  await r3.body?.cancel();
});
