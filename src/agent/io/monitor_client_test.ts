/**
 * Tests of the agent's monitor connection against a hand-written fake monitor on a loopback
 * websocket: handshake, request/reply by id, UpscaleRequest delivery, and the reference's replies
 * to garbage, unknown types and unknown ids. Event-driven; no sleeps.
 */
import assert from "node:assert/strict";
import {
  encodeMonitorMessage,
  encodeVersionResponse,
  parseAgentMessage,
} from "../../api/monitor_protocol.ts";
import { GiB } from "../../api/quantity.ts";
import { RemoteError } from "../../lib/errors.ts";
import { memoryLogger } from "../../lib/log.ts";
import { MonitorConnection } from "./monitor_client.ts";

interface FakeMonitor extends AsyncDisposable {
  url: string;
  received: unknown[];
  socket: () => Promise<WebSocket>;
  next: () => Promise<Record<string, unknown>>;
}

/** A fake monitor: handshake per `versionReply`, then records frames and lets the test reply. */
function fakeMonitor(versionReply = encodeVersionResponse({ version: 1 })): FakeMonitor {
  const received: unknown[] = [];
  const waiting: ((m: Record<string, unknown>) => void)[] = [];
  const queued: Record<string, unknown>[] = [];
  let resolveSocket: (ws: WebSocket) => void;
  const socketP = new Promise<WebSocket>((r) => (resolveSocket = r));
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const { socket, response } = Deno.upgradeWebSocket(req);
    let handshaken = false;
    socket.onmessage = (ev) => {
      if (!handshaken) {
        handshaken = true;
        socket.send(versionReply);
        resolveSocket(socket);
        return;
      }
      const m = JSON.parse(String(ev.data));
      received.push(m);
      const w = waiting.shift();
      if (w) w(m);
      else queued.push(m);
    };
    return response;
  });
  return {
    url: `ws://127.0.0.1:${server.addr.port}/monitor`,
    received,
    socket: () => socketP,
    next: () =>
      queued.length > 0 ? Promise.resolve(queued.shift()!) : new Promise((r) => waiting.push(r)),
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}

function opts(url: string, onUpscaleRequest = () => {}) {
  return {
    url,
    connectTimeoutMs: 2000,
    responseTimeoutMs: 2000,
    logger: memoryLogger(),
    onUpscaleRequest,
  };
}

Deno.test("handshake, downscale/upscale/health check replies matched by even ids", async () => {
  await using mon = fakeMonitor();
  await using conn = await MonitorConnection.open(opts(mon.url));
  const ws = await mon.socket();

  const down = conn.downscale({ vCPUs: 500, mem: 2 * GiB });
  const m1 = await mon.next();
  assert.deepEqual(m1, {
    content: { target: { cpu: 0.5, mem: 2 * GiB } },
    type: "DownscaleRequest",
    id: 2,
  });
  ws.send(encodeMonitorMessage({ type: "DownscaleResult", Ok: false, Status: "busy", id: 2 }));
  assert.deepEqual(await down, { ok: false, status: "busy" });

  const up = conn.upscale({ vCPUs: 1000, mem: 4 * GiB });
  const m2 = await mon.next();
  assert.equal(m2.type, "UpscaleNotification");
  assert.equal(m2.id, 4);
  ws.send(encodeMonitorMessage({ type: "UpscaleConfirmation", id: 4 }));
  await up;

  const hc = conn.healthCheck();
  const m3 = await mon.next();
  assert.deepEqual(m3, { content: {}, type: "HealthCheck", id: 6 });
  ws.send(encodeMonitorMessage({ type: "HealthCheck", id: 6 }));
  await hc;
  assert.equal(conn.waiters, 0);
});

Deno.test("UpscaleRequest is delivered; garbage, unknown types and unknown ids get InvalidMessage", async () => {
  await using mon = fakeMonitor();
  let upscaleRequests = 0;
  await using conn = await MonitorConnection.open(opts(mon.url, () => upscaleRequests++));
  const ws = await mon.socket();
  ws.send(encodeMonitorMessage({ type: "UpscaleRequest", id: 3 }));
  ws.send("{not json");
  ws.send('{"type":"Bogus","id":5}');
  ws.send(encodeMonitorMessage({ type: "UpscaleConfirmation", id: 40 }));
  const replies = [await mon.next(), await mon.next(), await mon.next()];
  assert.equal(upscaleRequests, 1);
  for (const r of replies) {
    assert.equal(parseAgentMessage(r === undefined ? "" : JSON.stringify(r)).ok, true);
  }
  assert.equal(replies[0]!.type, "InvalidMessage");
  assert.equal(replies[1]!.type, "InvalidMessage");
  assert.deepEqual(replies[1]!.content, { error: 'Received message of unknown type: "Bogus"' });
  assert.equal(replies[1]!.id, 5);
  assert.deepEqual(replies[2], {
    content: {
      error:
        "Received UpscaleConfirmation with id 40 but id is unknown or already timed out waiting for a reply",
    },
    type: "InvalidMessage",
    id: 40,
  });
  // The connection still works after the garbage.
  const hc = conn.healthCheck();
  const m = await mon.next();
  ws.send(encodeMonitorMessage({ type: "HealthCheck", id: m.id as number }));
  await hc;
});

Deno.test("InternalError fails the matching request; a version error fails the handshake", async () => {
  await using mon = fakeMonitor();
  await using conn = await MonitorConnection.open(opts(mon.url));
  const ws = await mon.socket();
  const up = conn.upscale({ vCPUs: 250, mem: GiB });
  const m = await mon.next();
  ws.send(
    encodeMonitorMessage({ type: "InternalError", error: "cgroup gone", id: m.id as number }),
  );
  await assert.rejects(
    up,
    (e: unknown) => e instanceof RemoteError && /cgroup gone/.test(e.message),
  );

  await using bad = fakeMonitor(encodeVersionResponse({ error: "no common version" }));
  await assert.rejects(
    MonitorConnection.open(opts(bad.url)),
    (e: unknown) => e instanceof RemoteError && /no common version/.test(e.message),
  );
});

Deno.test("a closed connection fails waiting requests", async () => {
  await using mon = fakeMonitor();
  const conn = await MonitorConnection.open(opts(mon.url));
  const ws = await mon.socket();
  const hc = conn.healthCheck();
  await mon.next();
  ws.close(1011, "bye");
  await assert.rejects(hc, RemoteError);
  assert.equal((await conn.closed).code, 1011);
});
