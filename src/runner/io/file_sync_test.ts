/**
 * Tests of the runner's file sync against a fake neonvmd files endpoint on loopback that keeps
 * the pushed files and answers the shared checksum.
 * @module
 */
import assert from "node:assert/strict";
import { filesChecksum } from "../../api/daemon_api_checksum.ts";
import { FakeClock } from "../../lib/clock.ts";
import { memoryLogger } from "../../lib/log.ts";
import { syncFiles } from "./file_sync.ts";

Deno.test("pushes an atomic-writer dir, then re-pushes only when the guest checksum differs", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.mkdir(`${dir}/..v1`);
  await Deno.writeTextFile(`${dir}/..v1/tls.crt`, "cert");
  await Deno.symlink("..v1", `${dir}/..data`);
  const stored = new Map<string, Record<string, Uint8Array>>();
  const puts: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const path = new URL(req.url).pathname;
    if (req.method === "PUT") {
      const body = await req.json() as Record<string, { data: string }>;
      const files: Record<string, Uint8Array> = {};
      for (const [n, f] of Object.entries(body)) {
        files[n] = Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0));
      }
      stored.set(path, files);
      puts.push(path);
      return new Response("");
    }
    return new Response(filesChecksum(stored.get(path) ?? {}));
  });
  const clock = new FakeClock(0);
  const ctl = new AbortController();
  try {
    const task = syncFiles(
      [{ localDir: dir, guestPath: "/var/tls" }],
      { baseUrl: `http://127.0.0.1:${server.addr.port}`, clock, logger: memoryLogger() },
      ctl.signal,
    );
    const settle = async () => {
      for (let i = 0; i < 50; i++) await new Promise((r) => setTimeout(r, 5));
    };
    await settle();
    assert.deepEqual(puts, ["/files/var/tls"]);
    assert.equal(new TextDecoder().decode(stored.get("/files/var/tls")!["tls.crt"]), "cert");
    await clock.advance(30_000);
    await settle();
    assert.equal(puts.length, 1, "checksum matches: no re-push");
    stored.set("/files/var/tls", {}); // the guest lost the files
    await clock.advance(30_000);
    await settle();
    assert.equal(puts.length, 2, "checksum differs: pushed again");
    ctl.abort();
    await task;
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
