/**
 * Boots the Postgres example image (vm-examples/pg16, built by `deno task vm-builder example
 * pg16`) under QEMU/TCG as the runner would, and checks from the host: psql on the forwarded 5432
 * runs queries as the demo user, custom neon.* GUCs are set, pgbench runs in the guest, Postgres
 * is in the neon-postgres cgroup, :9100 serves the gauges the agent reads, the vm-monitor answers
 * the websocket handshake on 10301, and the power button stops Postgres cleanly.
 */
import assert from "node:assert/strict";
import { bootGuest, canBoot, extractDisk, gaugeSamples, waitFor } from "./_qemu.ts";

const CACHE = Deno.env.get("NEONVM_CACHE") ?? "/var/cache/neonvm-ts";
const ARCHIVE = Deno.env.get("PG16_IMAGE") ?? `${CACHE}/images/vm-pg16.oci.tar`;
const haveImage = await Deno.stat(ARCHIVE).then(() => true, () => false);
if (!haveImage) {
  Deno.stderr.writeSync(
    new TextEncoder().encode(
      `skipping: ${ARCHIVE} missing; run deno task vm-builder example pg16\n`,
    ),
  );
}

async function psql(port: number, sql: string): Promise<string> {
  const out = await new Deno.Command("psql", {
    args: [
      "-X",
      "-A",
      "-t",
      "-v",
      "ON_ERROR_STOP=1",
      "-h",
      "127.0.0.1",
      "-p",
      String(port),
      "-U",
      "demo",
      "-d",
      "postgres",
      "-c",
      sql,
    ],
    env: { PGPASSWORD: "demo", PGCONNECT_TIMEOUT: "5" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (out.code !== 0) throw new Error(new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout).trim();
}

Deno.test({
  name: "pg16 guest: Postgres, pgbench, metrics, vm-monitor and clean shutdown",
  ignore: !haveImage || !(await canBoot()),
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "vmb-pg16-", dir: CACHE });
    try {
      await extractDisk(ARCHIVE, `${dir}/disk.qcow2`, dir);
      await using guest = await bootGuest({
        disk: `${dir}/disk.qcow2`,
        work: dir,
        runtimeFiles: {
          "sysctl.conf": "kernel.core_pattern=core\nkernel.core_uses_pid=1\n",
          "env.sh": "export POSTGRES_PASSWORD='demo'\n",
          "mounts.sh": "set -euo pipefail\n",
        },
        guestPorts: [5432, 9100, 10301, 25183],
        memMiB: 1536,
      });
      const port = (p: number) => guest.ports.get(p)!;
      const t0 = Date.now();
      const one = await waitFor(
        "psql select 1",
        420_000,
        async () => await psql(port(5432), "select 1"),
        3000,
      );
      assert.equal(one, "1");
      const readyMs = Date.now() - t0;
      await psql(
        port(5432),
        "create table t(x int); insert into t select generate_series(1,1000);",
      );
      assert.equal(await psql(port(5432), "select sum(x) from t"), "500500");
      assert.equal(await psql(port(5432), "show neon.max_file_cache_size"), "1GB");
      assert.match(await psql(port(5432), "select version()"), /^PostgreSQL 15\./);

      const bench = await guest.shell(
        "PGPASSWORD=demo /usr/local/bin/pgbench -h 127.0.0.1 -U demo -i -s 1 postgres 2>&1 | tail -1 && " +
          "cat /proc/$(head -1 /var/lib/postgresql/data/postmaster.pid)/cgroup",
        300_000,
      );
      assert.match(bench, /done in/);
      assert.match(bench, /0::\/neon-postgres/);
      assert.equal(await psql(port(5432), "select count(*) from pgbench_accounts"), "100000");

      for (
        const g of [
          "node_load1",
          "node_load5",
          "node_memory_MemTotal_bytes",
          "node_memory_MemAvailable_bytes",
          "node_memory_Cached_bytes",
        ]
      ) {
        const s = await gaugeSamples(`http://127.0.0.1:${port(9100)}/metrics`, g);
        assert.equal(s.type, "gauge", g);
        assert.equal(s.values.length, 1, g);
      }
      const version = await waitFor(
        "vm-monitor handshake",
        180_000,
        () =>
          new Promise<string | undefined>((resolve) => {
            const ws = new WebSocket(`ws://127.0.0.1:${port(10301)}/monitor`);
            const t = setTimeout(() => (ws.close(), resolve(undefined)), 5000);
            ws.onopen = () => ws.send('{"min":1,"max":1}');
            ws.onmessage = (e) => (clearTimeout(t), ws.close(), resolve(String(e.data)));
            ws.onerror = () => (clearTimeout(t), resolve(undefined));
          }),
      );
      assert.equal(version, '{"version":1}');
      Deno.stderr.writeSync(
        new TextEncoder().encode(`pg16: psql ready ${readyMs} ms after boot started\n`),
      );

      await guest.qmp("system_powerdown");
      let timer: ReturnType<typeof setTimeout> | undefined;
      const code = await Promise.race([
        guest.exited,
        new Promise<number>((r) => timer = setTimeout(() => r(-1), 90_000)),
      ]);
      clearTimeout(timer);
      assert.equal(code, 0, guest.consoleText().slice(-3000));
      assert.match(guest.consoleText(), /database system is shut down/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
