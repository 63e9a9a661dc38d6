/**
 * The LFC sizing against a real, throwaway Postgres 15 cluster (initdb in a temp dir, loopback on
 * a free port): stock Postgres accepts `ALTER SYSTEM SET neon.file_cache_size_limit` once the
 * session has a placeholder, `neon.max_file_cache_size` caps the size, and the monitor process
 * with `--pgconnstr` resizes the cache on upscale and downscale. Needs root (to run initdb as the
 * `postgres` user) and /usr/lib/postgresql/15/bin; skipped otherwise.
 * @module
 */
import assert from "node:assert/strict";
import { encodeAgentMessage, parseMonitorMessage } from "../../src/api/monitor_protocol.ts";
import { GiB, MiB } from "../../src/api/quantity.ts";
import { PsqlFileCache } from "../../src/monitor/io/file_cache.ts";
import { connectAgent, freePort, startMonitor } from "./_monitor_process.ts";

const PG_BIN = "/usr/lib/postgresql/15/bin";
const canRun = Deno.uid() === 0 && (() => {
  try {
    Deno.statSync(`${PG_BIN}/initdb`);
    return true;
  } catch {
    return false;
  }
})();

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return text;
}

interface Cluster extends AsyncDisposable {
  connstr: string;
  dir: string;
}

async function startCluster(): Promise<Cluster> {
  const dir = await Deno.makeTempDir({ prefix: "h6-pg-" });
  const uid = Number((await run("id", ["-u", "postgres"])).trim());
  const gid = Number((await run("id", ["-g", "postgres"])).trim());
  await Deno.chown(dir, uid, gid);
  const port = freePort();
  const asPg = (bin: string, args: string[]) =>
    run("runuser", ["-u", "postgres", "--", `${PG_BIN}/${bin}`, ...args]);
  await asPg("initdb", ["-D", `${dir}/data`, "-A", "trust", "-U", "postgres", "--no-sync"]);
  await asPg("pg_ctl", [
    "-D",
    `${dir}/data`,
    "-o",
    `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c shared_buffers=16MB`,
    "-l",
    `${dir}/log`,
    "-w",
    "start",
  ]);
  return {
    dir,
    connstr: `postgresql://postgres@127.0.0.1:${port}/postgres`,
    async [Symbol.asyncDispose]() {
      await asPg("pg_ctl", ["-D", `${dir}/data`, "-m", "immediate", "stop"]).catch(() => "");
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function psql(connstr: string, sql: string): Promise<string> {
  return (await run("psql", ["-X", "-q", "-A", "-t", "-d", connstr, "-c", sql])).trim();
}

/** pg_reload_conf() only signals the postmaster; poll until new sessions see `want`. */
async function settingEventually(connstr: string, name: string, want: string): Promise<string> {
  let got = "";
  for (let i = 0; i < 50; i++) {
    got = await psql(connstr, `SELECT coalesce(current_setting('${name}', true), '<unset>')`);
    if (got === want) return got;
    await new Promise((r) => setTimeout(r, 100));
  }
  return got;
}

Deno.test({
  name: "real Postgres 15: file cache sizing via ALTER SYSTEM + pg_reload_conf",
  ignore: !canRun,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using pg = await startCluster();
    // A bare ALTER SYSTEM of an unknown neon.* parameter is rejected by stock Postgres ...
    await assert.rejects(
      psql(pg.connstr, "ALTER SYSTEM SET neon.file_cache_size_limit = 1"),
      /unrecognized configuration parameter "neon.file_cache_size_limit"/,
    );
    // ... so the adapter creates a session placeholder first; then it sticks.
    const fc = new PsqlFileCache({ connstr: pg.connstr });
    assert.equal(await fc.setSizeBytes(300 * MiB + 12345), 300 * MiB);
    assert.equal(await settingEventually(pg.connstr, "neon.file_cache_size_limit", "300"), "300");
    assert.equal(await fc.getSizeBytes(), 300 * MiB);
    const auto = await Deno.readTextFile(`${pg.dir}/data/postgresql.auto.conf`);
    assert.match(auto, /neon.file_cache_size_limit = '300'/);

    // The cap: neon.max_file_cache_size (MiB) limits what gets set.
    await run("psql", [
      "-X",
      "-q",
      "-d",
      pg.connstr,
      "-c",
      "SET neon.max_file_cache_size = 200",
      "-c",
      "ALTER SYSTEM SET neon.max_file_cache_size = 200",
      "-c",
      "SELECT pg_reload_conf()",
    ]);
    await settingEventually(pg.connstr, "neon.max_file_cache_size", "200");
    assert.equal(await fc.setSizeBytes(1 * GiB), 200 * MiB);
    assert.equal(await settingEventually(pg.connstr, "neon.file_cache_size_limit", "200"), "200");
    await run("psql", [
      "-X",
      "-q",
      "-d",
      pg.connstr,
      "-c",
      "ALTER SYSTEM RESET neon.max_file_cache_size",
      "-c",
      "SELECT pg_reload_conf()",
    ]);
    await settingEventually(pg.connstr, "neon.max_file_cache_size", "<unset>");

    // The monitor process sizes the cache at start (MemTotal 4 GiB -> 3072 MiB), on upscale
    // (8 GiB granted: usable 8092 MiB -> 6069 MiB) and on downscale (2 GiB -> 1189 MiB).
    const meminfo = `${pg.dir}/meminfo`;
    await Deno.writeTextFile(meminfo, `MemTotal:       ${(4 * GiB) / 1024} kB\n`);
    await using mon = await startMonitor([
      `--pgconnstr=${pg.connstr}`,
      `--meminfo=${meminfo}`,
      `--cgroup-root=${pg.dir}/no-cgroup-here`,
    ]);
    assert.equal(await settingEventually(pg.connstr, "neon.file_cache_size_limit", "3072"), "3072");
    const agent = await connectAgent(mon.url);
    agent.send(encodeAgentMessage({
      type: "UpscaleNotification",
      content: { granted: { cpu: 2, mem: 8 * GiB } },
      id: 2,
    }));
    assert.equal(await agent.next(5_000), '{"type":"UpscaleConfirmation","id":2}');
    assert.equal(await settingEventually(pg.connstr, "neon.file_cache_size_limit", "6069"), "6069");
    agent.send(encodeAgentMessage({
      type: "DownscaleRequest",
      content: { target: { cpu: 0.5, mem: 2 * GiB } },
      id: 4,
    }));
    const res = parseMonitorMessage(await agent.next(5_000));
    assert.ok(res.ok && res.value.type === "DownscaleResult" && res.value.Ok, JSON.stringify(res));
    assert.equal(res.value.Status, "set file cache size to 1189 MiB");
    assert.equal(await settingEventually(pg.connstr, "neon.file_cache_size_limit", "1189"), "1189");
    await agent.close();
    assert.equal(await mon.stop(), 0);
  },
});
