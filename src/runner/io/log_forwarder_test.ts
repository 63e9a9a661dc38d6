/**
 * Tests of the guest log forwarder against a local Unix socket that stands in for QEMU's
 * virtio-serial chardev (including a reconnect after the peer goes away).
 * @module
 */
import assert from "node:assert/strict";
import { systemClock } from "../../lib/clock.ts";
import { forwardGuestLogs } from "./log_forwarder.ts";

Deno.test("copies bytes from the log socket and reconnects after a hang-up", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/log.sock`;
  const got: string[] = [];
  const dec = new TextDecoder();
  const ctl = new AbortController();
  // Start before the socket exists: the forwarder must retry.
  const task = forwardGuestLogs({
    socketPath: path,
    write: (b) => got.push(dec.decode(b)),
    clock: systemClock,
    random: () => 0.5,
  }, ctl.signal);
  await new Promise((r) => setTimeout(r, 150));
  const listener = Deno.listen({ transport: "unix", path });
  try {
    const enc = new TextEncoder();
    const c1 = await listener.accept();
    await c1.write(enc.encode("line one\n"));
    c1.close();
    const c2 = await listener.accept();
    await c2.write(enc.encode("line two\n"));
    for (let i = 0; i < 50 && !got.join("").includes("line two"); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(got.join(""), "line one\nline two\n");
    ctl.abort();
    await task;
    c2.close();
  } finally {
    listener.close();
    await Deno.remove(dir, { recursive: true });
  }
});
