/**
 * Tests for the psql-driven LFC adapter with a fake `psql` script (the real-Postgres test lives in
 * tests/monitor/file_cache_pg_test.ts): the size parser, the script, capping, errors, timeouts.
 * @module
 */
import assert from "node:assert/strict";
import { MiB } from "../../api/quantity.ts";
import { ParseError, RemoteError, TimeoutError } from "../../lib/errors.ts";
import { parsePgSizeBytes, PsqlFileCache, setScript } from "./file_cache.ts";

Deno.test("parsePgSizeBytes: units, bare numbers are MiB, junk is undefined", () => {
  assert.equal(parsePgSizeBytes("256MB"), 256 * MiB);
  assert.equal(parsePgSizeBytes("1GB"), 1024 * MiB);
  assert.equal(parsePgSizeBytes("512kB"), 512 * 1024);
  assert.equal(parsePgSizeBytes("300"), 300 * MiB);
  assert.equal(parsePgSizeBytes(" 7 MB "), 7 * MiB);
  assert.equal(parsePgSizeBytes(""), undefined);
  assert.equal(parsePgSizeBytes("-1"), undefined);
  assert.equal(parsePgSizeBytes("1 PB"), undefined);
});

Deno.test("setScript creates the placeholder only when needed and reloads", () => {
  const s = setScript(300);
  assert.match(
    s,
    /\\if :need_placeholder\nSELECT set_config\('neon.file_cache_size_limit', '300', false\);\n\\endif/,
  );
  assert.match(s, /ALTER SYSTEM SET neon.file_cache_size_limit = 300;\nSELECT pg_reload_conf\(\);/);
  assert.throws(() => setScript(1.5), ParseError);
  assert.throws(() => setScript(-1), ParseError);
});

/** Writes a fake psql that logs its args and stdin and answers `max` for the max query. */
async function fakePsql(
  max: string,
  exitCode = 0,
  sleepS = 0,
): Promise<{ path: string; log: string }> {
  const dir = await Deno.makeTempDir({ prefix: "h6-psql-" });
  const log = `${dir}/log`;
  const path = `${dir}/psql`;
  await Deno.writeTextFile(
    path,
    sleepS > 0 ? `#!/bin/sh\nexec sleep ${sleepS}\n` : `#!/bin/sh
echo "ARGS $*" >> ${log}
input=$(cat)
echo "$input" >> ${log}
case "$input" in
  *max_file_cache_size*) echo "${max}" ;;
  *"current_setting('neon.file_cache_size_limit', true), ''"*) echo "128MB" ;;
esac
if [ ${exitCode} -ne 0 ]; then echo "psql: error: connection refused" >&2; fi
exit ${exitCode}
`,
  );
  await Deno.chmod(path, 0o755);
  return { path, log };
}

Deno.test("PsqlFileCache sets whole MiB, capped by neon.max_file_cache_size", async () => {
  const { path, log } = await fakePsql("200MB");
  try {
    const fc = new PsqlFileCache({ connstr: "postgresql://u@127.0.0.1:1/db", psqlPath: path });
    assert.equal(await fc.setSizeBytes(300 * MiB + 17), 200 * MiB);
    const text = await Deno.readTextFile(log);
    assert.match(
      text,
      /ARGS -X -q -A -t -v ON_ERROR_STOP=1 -d postgresql:\/\/u@127.0.0.1:1\/db -f -/,
    );
    assert.match(text, /ALTER SYSTEM SET neon.file_cache_size_limit = 200;/);
    assert.equal(await fc.getSizeBytes(), 128 * MiB);
  } finally {
    await Deno.remove(path.replace(/\/psql$/, ""), { recursive: true });
  }
  const uncapped = await fakePsql("");
  try {
    const fc = new PsqlFileCache({ connstr: "x", psqlPath: uncapped.path });
    assert.equal(await fc.setSizeBytes(300 * MiB + 17), 300 * MiB);
  } finally {
    await Deno.remove(uncapped.path.replace(/\/psql$/, ""), { recursive: true });
  }
});

Deno.test("PsqlFileCache reports failures and timeouts as typed errors", async () => {
  const failing = await fakePsql("", 2);
  const slow = await fakePsql("", 0, 3);
  try {
    await assert.rejects(
      new PsqlFileCache({ connstr: "x", psqlPath: failing.path }).setSizeBytes(MiB),
      (e: unknown) => e instanceof RemoteError && /connection refused/.test(e.message),
    );
    await assert.rejects(
      new PsqlFileCache({ connstr: "x", psqlPath: "/nonexistent/psql" }).getSizeBytes(),
      RemoteError,
    );
    await assert.rejects(
      new PsqlFileCache({ connstr: "x", psqlPath: slow.path, timeoutMs: 200 }).getSizeBytes(),
      TimeoutError,
    );
  } finally {
    for (const p of [failing.path, slow.path]) {
      await Deno.remove(p.replace(/\/psql$/, ""), { recursive: true });
    }
  }
});
