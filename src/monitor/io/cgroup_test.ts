/**
 * Tests for the cgroup v2 file adapter against a fake cgroup tree in a temporary directory.
 * @module
 */
import assert from "node:assert/strict";
import { ParseError, RemoteError } from "../../lib/errors.ts";
import { Cgroup2, openCgroup2, parseMemoryStat, readingFrom, readMemTotalBytes } from "./cgroup.ts";
import { fakeCgroupTree, writeUsage } from "./_fakes.ts";

Deno.test("parseMemoryStat reads key/value lines and rejects garbage", () => {
  const m = parseMemoryStat("anon 10\nactive_anon 7\ninactive_anon 3\n\n");
  assert.equal(m.get("anon"), 10);
  assert.throws(() => parseMemoryStat("anon ten\n"), ParseError);
  assert.deepEqual(readingFrom("active_anon 7\ninactive_anon 3\n", "42\n"), {
    nonReclaimableBytes: 10,
    currentBytes: 42,
  });
  assert.throws(() => readingFrom("anon 10\n", "42"), ParseError);
  assert.throws(() => readingFrom("active_anon 1\ninactive_anon 1\n", "max"), ParseError);
});

Deno.test("openCgroup2 checks the hierarchy, reads usage and writes limits in a safe order", async () => {
  const root = await fakeCgroupTree("neon-postgres", 300 << 20);
  try {
    const cg = await openCgroup2(root, "neon-postgres");
    assert.deepEqual(await cg.read(), {
      nonReclaimableBytes: 300 << 20,
      currentBytes: (300 << 20) + (50 << 20),
    });
    await writeUsage(cg.path, 500 << 20, 600 << 20);
    assert.equal((await cg.read()).nonReclaimableBytes, 500 << 20);
    await cg.setLimits(900 << 20, 1000 << 20);
    assert.equal(await Deno.readTextFile(`${cg.path}/memory.high`), String(900 << 20));
    assert.equal(await Deno.readTextFile(`${cg.path}/memory.max`), String(1000 << 20));
    await cg.setLimits(400 << 20, 500 << 20);
    assert.equal(await Deno.readTextFile(`${cg.path}/memory.max`), String(500 << 20));

    await assert.rejects(openCgroup2(root, "missing"), RemoteError);
    await assert.rejects(openCgroup2(root, "../etc"), ParseError);
    await Deno.writeTextFile(`${root}/cgroup.controllers`, "cpu pids\n");
    await assert.rejects(openCgroup2(root, "neon-postgres"), /memory controller/);
    await Deno.remove(`${root}/cgroup.controllers`);
    await assert.rejects(openCgroup2(root, "neon-postgres"), /not a cgroup v2 hierarchy/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("setLimits failures are RemoteErrors naming the cgroup", async () => {
  const cg = new Cgroup2("/nonexistent/h6/cgroup");
  await assert.rejects(cg.setLimits(1, 2), (e: unknown) => {
    assert.ok(e instanceof RemoteError);
    assert.match(e.message, /\/nonexistent\/h6\/cgroup/);
    return true;
  });
});

Deno.test("readMemTotalBytes parses /proc/meminfo format", async () => {
  const f = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(f, "MemTotal:        4028440 kB\nMemFree:  1 kB\n");
    assert.equal(await readMemTotalBytes(f), 4028440 * 1024);
    await Deno.writeTextFile(f, "MemFree:  1 kB\n");
    await assert.rejects(readMemTotalBytes(f), ParseError);
  } finally {
    await Deno.remove(f);
  }
  assert.ok((await readMemTotalBytes()) > 0);
});
