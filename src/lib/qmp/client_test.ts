/**
 * Tests of the QMP client and typed commands against the in-process fake QMP server (real wire
 * format over loopback TCP and a Unix socket).
 * @module
 */
import assert from "node:assert/strict";
import { connectQmp, QmpCommandError, withQmp } from "./client.ts";
import {
  classifyCpuSlots,
  countPluggedCpus,
  getVirtioMemRequestedSize,
  migrate,
  migrateCancel,
  migrateSetCapabilities,
  migrateSetParameters,
  plugCpu,
  queryCpusFast,
  queryHotpluggableCpus,
  queryKvm,
  queryMemoryDevices,
  queryMemorySizeSummary,
  queryMigrate,
  queryStatus,
  quit,
  setVirtioMemRequestedSize,
  systemPowerdown,
  totalMemoryBytes,
  unplugCpu,
} from "./commands.ts";
import { FAKE_QMP_NO_REPLY, startFakeQmpServer } from "./fake_qmp_server.ts";
import { ParseError, RemoteError, TimeoutError } from "../errors.ts";

const GiB = 1024 ** 3;

Deno.test("handshake negotiates capabilities before any command", async () => {
  await using server = startFakeQmpServer();
  await using qmp = await connectQmp(server.address);
  assert.equal(qmp.greeting?.QMP.version.qemu.major, 7);
  assert.deepEqual(server.calls.map((c) => c.execute), ["qmp_capabilities"]);
  const st = await queryStatus(qmp);
  assert.equal(st.status, "running");
  assert.equal(st.running, true);
});

Deno.test("vCPU hot-add fills the lowest free core, hot-remove takes the highest added core", async () => {
  await using server = startFakeQmpServer();
  await using qmp = await connectQmp(server.address);
  assert.equal(await countPluggedCpus(qmp), 2);
  const a = await plugCpu(qmp);
  assert.equal(a?.props["core-id"], 2);
  const b = await plugCpu(qmp);
  assert.equal(b?.props["core-id"], 3);
  assert.equal(await plugCpu(qmp), undefined, "no free slot left");
  assert.deepEqual(
    server.calls.filter((c) => c.execute === "device_add").map((c) => c.arguments),
    [
      { id: "cpu2", driver: "max-x86_64-cpu", "core-id": 2, "socket-id": 0, "thread-id": 0 },
      { id: "cpu3", driver: "max-x86_64-cpu", "core-id": 3, "socket-id": 0, "thread-id": 0 },
    ],
  );
  const fast = await queryCpusFast(qmp);
  assert.equal(fast.length, 4);
  const removed = await unplugCpu(qmp);
  assert.equal(removed?.["qom-path"], "/machine/peripheral/cpu3");
  await unplugCpu(qmp);
  assert.equal(await unplugCpu(qmp), undefined, "boot CPUs are never removed");
  assert.equal(await countPluggedCpus(qmp), 2);
});

Deno.test("classifyCpuSlots ignores QEMU's list order", () => {
  const slot = (core: number, path?: string) => ({
    type: "t",
    "vcpus-count": 1,
    props: { "core-id": core, "socket-id": 0, "thread-id": 0 },
    ...(path === undefined ? {} : { "qom-path": path }),
  });
  const slots = [
    slot(1, "/machine/peripheral/cpu1"),
    slot(0, "/machine/unattached/device[0]"),
    slot(3),
    slot(2, "/machine/peripheral/cpu2"),
    slot(4),
  ];
  const c = classifyCpuSlots(slots);
  assert.deepEqual(c.empty.map((s) => s.props["core-id"]), [3, 4]);
  assert.deepEqual(c.removable.map((s) => s.props["core-id"]), [2, 1]);
  assert.equal(c.plugged.length, 3);
  assert.deepEqual(classifyCpuSlots([...slots].reverse()).empty.map((s) => s.props["core-id"]), [
    3,
    4,
  ]);
});

Deno.test("virtio-mem requested-size round-trips and shows in the memory summary", async () => {
  await using server = startFakeQmpServer();
  await using qmp = await connectQmp(server.address);
  assert.equal(await getVirtioMemRequestedSize(qmp), 0);
  await setVirtioMemRequestedSize(qmp, 2 * GiB);
  assert.equal(await getVirtioMemRequestedSize(qmp), 2 * GiB);
  const sum = await queryMemorySizeSummary(qmp);
  assert.equal(totalMemoryBytes(sum), 3 * GiB);
  const devs = await queryMemoryDevices(qmp);
  assert.equal(devs[0]?.data["requested-size"], 2 * GiB);
  await assert.rejects(
    setVirtioMemRequestedSize(qmp, 5 * 1024 * 1024),
    (e: unknown) => e instanceof QmpCommandError && e.errorClass === "GenericError",
  );
  assert.equal(await getVirtioMemRequestedSize(qmp), 2 * GiB, "a rejected set changes nothing");
});

Deno.test("query-kvm tells KVM from TCG", async () => {
  await using server = startFakeQmpServer({ vm: { kvm: false } });
  await using qmp = await connectQmp(server.address);
  assert.deepEqual(await queryKvm(qmp), { enabled: false, present: false });
});

Deno.test("error replies become QmpCommandError with class and command", async () => {
  await using server = startFakeQmpServer();
  await using qmp = await connectQmp(server.address);
  await assert.rejects(
    qmp.execute("no-such-command"),
    (e: unknown) =>
      e instanceof QmpCommandError && e.errorClass === "CommandNotFound" &&
      e.command === "no-such-command",
  );
  // The connection stays usable after an error.
  assert.equal((await queryHotpluggableCpus(qmp)).length, 4);
});

Deno.test("replies are correlated by id when many commands are in flight", async () => {
  await using server = startFakeQmpServer();
  await using qmp = await connectQmp(server.address);
  const results = await Promise.all([
    queryStatus(qmp),
    queryMemorySizeSummary(qmp),
    queryHotpluggableCpus(qmp),
    getVirtioMemRequestedSize(qmp),
  ]);
  assert.equal(results[0].status, "running");
  assert.equal(results[1]["base-memory"], GiB);
  assert.equal(results[2].length, 4);
  assert.equal(results[3], 0);
});

Deno.test("a reply that does not match the schema is a ParseError", async () => {
  await using server = startFakeQmpServer({
    handlers: { "query-status": () => ({ nonsense: true }) },
  });
  await using qmp = await connectQmp(server.address);
  await assert.rejects(queryStatus(qmp), ParseError);
});

Deno.test("events reach listeners and waitForEvent", async () => {
  await using server = startFakeQmpServer();
  await using qmp = await connectQmp(server.address);
  const seen: string[] = [];
  const off = qmp.onEvent((e) => seen.push(e.event));
  const wait = qmp.waitForEvent("POWERDOWN", { timeoutMs: 2000 });
  await systemPowerdown(qmp);
  const ev = await wait;
  assert.equal(ev.event, "POWERDOWN");
  off();
  server.emit("RESET");
  await queryStatus(qmp); // a round trip after the event
  assert.deepEqual(seen, ["POWERDOWN"]);
});

Deno.test("a silent server fails the handshake with a timeout", async () => {
  await using server = startFakeQmpServer({ silent: true });
  await assert.rejects(
    connectQmp(server.address, { timeoutMs: 200 }),
    (e: unknown) => e instanceof RemoteError && e.cause instanceof TimeoutError,
  );
});

Deno.test("a command with no reply times out, can be aborted, and the session survives", async () => {
  await using server = startFakeQmpServer({
    handlers: { "query-status": () => FAKE_QMP_NO_REPLY },
  });
  await using qmp = await connectQmp(server.address);
  await assert.rejects(queryStatus(qmp, { timeoutMs: 50 }), TimeoutError);
  const ctl = new AbortController();
  const p = queryStatus(qmp, { signal: ctl.signal });
  ctl.abort(new Error("stop"));
  await assert.rejects(p, /stop/);
  assert.equal(await getVirtioMemRequestedSize(qmp), 0);
});

Deno.test("refusing connection is a RemoteError", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  await assert.rejects(
    connectQmp({ transport: "tcp", hostname: "127.0.0.1", port }),
    RemoteError,
  );
});

Deno.test("unix socket transport, quit closes the connection and fails later calls", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await using server = startFakeQmpServer({ unixPath: `${dir}/qmp.sock` });
    const qmp = await connectQmp(server.address);
    await quit(qmp);
    await assert.rejects(queryStatus(qmp, { timeoutMs: 1000 }), RemoteError);
    await qmp.close();
    assert.equal(qmp.closed, true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("migration commands send the reference's arguments", async () => {
  await using server = startFakeQmpServer();
  await withQmp(server.address, async (qmp) => {
    await migrateSetCapabilities(qmp, [
      { capability: "xbzrle", state: true },
      { capability: "auto-converge", state: true },
      { capability: "postcopy-ram", state: false },
    ]);
    await migrateSetParameters(qmp, {
      "xbzrle-cache-size": 256 * 1024 * 1024,
      "max-bandwidth": GiB,
    });
    assert.deepEqual(await queryMigrate(qmp), {});
    await migrate(qmp, { uri: "tcp:10.0.0.2:20187", inc: true, blk: false });
    assert.equal((await queryMigrate(qmp)).status, "active");
    await migrateCancel(qmp);
    assert.equal((await queryMigrate(qmp)).status, "cancelled");
  });
  assert.equal(server.vm.migrationCapabilities["xbzrle"], true);
  assert.equal(server.vm.migrationParameters["max-bandwidth"], GiB);
  assert.deepEqual(server.calls.find((c) => c.execute === "migrate")?.arguments, {
    uri: "tcp:10.0.0.2:20187",
    inc: true,
    blk: false,
  });
});

/** A QMP peer that greets, negotiates, then hangs up on `quit` without replying (QEMU exiting). */
function hangUpOnQuitServer(): { port: number; done: Promise<void> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const done = (async () => {
    const conn = await listener.accept();
    listener.close();
    const enc = new TextEncoder();
    await conn.write(enc.encode(
      JSON.stringify({
        QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 } }, capabilities: [] },
      }) + "\n",
    ));
    const buf = new Uint8Array(4096);
    let text = "";
    while (true) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
      const lines = text.split("\n");
      text = lines.pop() ?? "";
      let quitSeen = false;
      for (const line of lines.filter((l) => l.trim() !== "")) {
        const req = JSON.parse(line);
        if (req.execute === "quit") quitSeen = true;
        else await conn.write(enc.encode(JSON.stringify({ return: {}, id: req.id }) + "\n"));
      }
      if (quitSeen) break;
    }
    conn.close();
  })();
  return { port, done };
}

Deno.test("quit succeeds when QEMU hangs up before replying; fails on a closed client", async () => {
  const srv = hangUpOnQuitServer();
  const qmp = await connectQmp({ transport: "tcp", hostname: "127.0.0.1", port: srv.port });
  await quit(qmp, { timeoutMs: 5000 });
  assert.equal(qmp.closed, true);
  await srv.done;
  // The connection is gone now: a second quit cannot have reached QEMU, so it fails.
  await assert.rejects(quit(qmp, { timeoutMs: 1000 }), RemoteError);
  await qmp.close();
});
