/**
 * Tests of neonvmd's HTTP handler on a fake sysfs tree and a temp directory.
 * @module
 */
import assert from "node:assert/strict";
import { memoryLogger } from "../../lib/log.ts";
import { filesChecksum } from "../../api/daemon_api_checksum.ts";
import { createDaemonHandler } from "./http.ts";

async function fakeSysfs(online: string, offline: string, cpus: number): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "fake-sysfs-" });
  await Deno.writeTextFile(`${root}/online`, online);
  await Deno.writeTextFile(`${root}/offline`, offline);
  for (let c = 1; c < cpus; c++) {
    await Deno.mkdir(`${root}/cpu${c}`);
    await Deno.writeTextFile(`${root}/cpu${c}/online`, "");
  }
  return root;
}

const req = (method: string, path: string, body?: string) =>
  new Request(`http://guest${path}`, body === undefined ? { method } : { method, body });

Deno.test("GET /cpu reports online CPUs x 1000", async () => {
  const root = await fakeSysfs("0-2\n", "3\n", 4);
  try {
    const h = createDaemonHandler({ sysfsCpuRoot: root, logger: memoryLogger() });
    const r = await h(req("GET", "/cpu"));
    assert.equal(r.status, 200);
    assert.equal(await r.text(), "3000");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("PUT /cpu writes the sysfs switches; bad body is 400 and writes nothing", async () => {
  const root = await fakeSysfs("0-1\n", "2-3\n", 4);
  try {
    const h = createDaemonHandler({ sysfsCpuRoot: root, logger: memoryLogger() });
    for (const bad of ["", "abc", "-1000", "1.5", '{"VCPUs":2}']) {
      assert.equal((await h(req("PUT", "/cpu", bad))).status, 400, `body ${bad}`);
    }
    for (const c of [1, 2, 3]) assert.equal(await Deno.readTextFile(`${root}/cpu${c}/online`), "");
    assert.equal((await h(req("PUT", "/cpu", "3500"))).status, 200);
    assert.equal(await Deno.readTextFile(`${root}/cpu2/online`), "1");
    assert.equal(await Deno.readTextFile(`${root}/cpu3/online`), "1");
    assert.equal(await Deno.readTextFile(`${root}/cpu1/online`), "", "already online: untouched");
    // Pretend the kernel applied it; then go down to 1.
    await Deno.writeTextFile(`${root}/online`, "0-3\n");
    await Deno.writeTextFile(`${root}/offline`, "\n");
    assert.equal((await h(req("PUT", "/cpu", "1000"))).status, 200);
    for (const c of [1, 2, 3]) assert.equal(await Deno.readTextFile(`${root}/cpu${c}/online`), "0");
    assert.equal((await h(req("POST", "/cpu", "1000"))).status, 404);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("PUT then GET /files uses the atomic-writer layout and the shared checksum", async () => {
  const root = await Deno.makeTempDir({ prefix: "fake-files-" });
  try {
    let n = 0;
    const h = createDaemonHandler({
      filesRoot: root,
      logger: memoryLogger(),
      stamp: () => `v${++n}`,
    });
    const body = { "tls.crt": { data: btoa("cert") }, "tls.key": { data: btoa("key") } };
    assert.equal((await h(req("PUT", "/files/var/tls", JSON.stringify(body)))).status, 200);
    assert.equal(await Deno.readTextFile(`${root}/var/tls/tls.crt`), "cert");
    assert.equal(await Deno.readLink(`${root}/var/tls/..data`), "..v1");
    const enc = new TextEncoder();
    const want = filesChecksum({ "tls.crt": enc.encode("cert"), "tls.key": enc.encode("key") });
    assert.equal(await (await h(req("GET", "/files/var/tls"))).text(), want);
    // Replace with one file: the other link and the old dir go away.
    await h(req("PUT", "/files/var/tls", JSON.stringify({ "tls.crt": { data: btoa("c2") } })));
    assert.equal(await Deno.readTextFile(`${root}/var/tls/tls.crt`), "c2");
    await assert.rejects(Deno.lstat(`${root}/var/tls/tls.key`), Deno.errors.NotFound);
    await assert.rejects(Deno.lstat(`${root}/var/tls/..v1`), Deno.errors.NotFound);
    assert.equal((await h(req("PUT", "/files/x", '{"a": {"data": 5}}'))).status, 400);
    assert.equal(
      (await h(req("PUT", "/files/x", JSON.stringify({ "../evil": { data: "" } })))).status,
      400,
    );
    assert.equal((await h(req("GET", "/files/x/..%2Fetc"))).status, 400);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
