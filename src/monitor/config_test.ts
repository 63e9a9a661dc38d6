/**
 * Tests for the vm-monitor's flag parsing: defaults, the reference's flags, and clear errors.
 * @module
 */
import assert from "node:assert/strict";
import { ConfigError } from "../lib/errors.ts";
import { DEFAULT_CGROUP, parseMonitorArgs } from "./config.ts";

Deno.test("defaults: 0.0.0.0:10301, cgroup neon-postgres (implicit), limits on, no LFC", () => {
  const c = parseMonitorArgs([]);
  assert.deepEqual(c.addr, { host: "0.0.0.0", port: 10301 });
  assert.equal(c.cgroup, DEFAULT_CGROUP);
  assert.equal(c.cgroupExplicit, false);
  assert.equal(c.cgroupLimits, true);
  assert.equal(c.pgconnstr, undefined);
  assert.equal(c.sampleIntervalMs, 100);
  assert.equal(c.psqlTimeoutMs, 5000);
  assert.ok(Object.isFrozen(c));
});

Deno.test("reference flags in both --flag=value and --flag value forms", () => {
  const c = parseMonitorArgs([
    "--addr=127.0.0.1:9999",
    "--cgroup",
    "my-pg",
    "--pgconnstr=host=/run/pg user=cloud_admin dbname=postgres",
    "--cgroup-limits=false",
    "--cgroup-root",
    "/tmp/cg",
    "--sample-interval-ms=50",
    "--psql-timeout-ms=30000",
  ]);
  assert.deepEqual(c.addr, { host: "127.0.0.1", port: 9999 });
  assert.equal(c.cgroup, "my-pg");
  assert.equal(c.cgroupExplicit, true);
  assert.equal(c.pgconnstr, "host=/run/pg user=cloud_admin dbname=postgres");
  assert.equal(c.cgroupLimits, false);
  assert.equal(c.cgroupRoot, "/tmp/cg");
  assert.equal(c.sampleIntervalMs, 50);
  assert.equal(c.psqlTimeoutMs, 30000);
  assert.deepEqual(parseMonitorArgs(["--addr", "[::1]:10301"]).addr, { host: "::1", port: 10301 });
});

Deno.test("bad flags fail with the flag named", () => {
  const bad: [string[], RegExp][] = [
    [["--addr=nohost"], /--addr: expected host:port/],
    [["--addr=h:70000"], /--addr: port 70000 out of range/],
    [["--cgroup-limits=yes"], /--cgroup-limits/],
    [["--sample-interval-ms=1"], /--sample-interval-ms/],
    [["--bogus"], /Invalid flags/],
    [["positional"], /Invalid flags/],
  ];
  for (const [argv, re] of bad) {
    assert.throws(() => parseMonitorArgs(argv), (e: unknown) => {
      assert.ok(e instanceof ConfigError, argv.join(" "));
      assert.match(e.message, re, argv.join(" "));
      return true;
    });
  }
});
