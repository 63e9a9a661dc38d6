/**
 * Tests of the disk plan and runtime-disk contents.
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { planDisks } from "./disks.ts";
import { runnerPaths } from "./paths.ts";
import { shellQuote } from "./shell.ts";
import { specFixture } from "./_fixtures.ts";

const paths = runnerPaths("/vm");

Deno.test("runtime disk carries sysctls, command, args, env and mounts", () => {
  const spec = specFixture({
    disks: [
      { name: "cache", mountPath: "/var/cache", emptyDisk: { size: "1Gi", discard: true } },
      { name: "conf", mountPath: "/etc/app", configMap: { name: "app" } },
      { name: "watched", mountPath: "/etc/w", watch: true, secret: { secretName: "w" } },
      { name: "scratch", mountPath: "/scratch", tmpfs: { size: "64Mi" } },
    ],
  }, {
    command: ["sh", "-c"],
    args: ["echo it's $HOME"],
    env: [{ name: "FOO", value: "b'ar" }, { name: "BAD-NAME", value: "x" }],
    settings: { sysctl: ["vm.swappiness=10"], swap: "2Gi" },
  });
  const plan = planDisks({ spec, paths, diskCacheSettings: "cache=none", sshKeys: true });
  const f = plan.runtimeFiles;
  assert.equal(
    f["sysctl.conf"],
    "kernel.core_pattern=core\nkernel.core_uses_pid=1\nvm.swappiness=10\n",
  );
  assert.equal(f["command.sh"], "'sh' '-c'\n");
  assert.equal(f["args.sh"], `'echo it'"'"'s $HOME'\n`);
  assert.equal(f["env.sh"], `export FOO='b'"'"'ar'\n`);
  const mounts = f["mounts.sh"]!.split("\n");
  assert.equal(mounts[0], "set -euo pipefail");
  assert.ok(
    mounts.includes("/neonvm/bin/mount -o discard $(/neonvm/bin/blkid -L cache) '/var/cache'"),
  );
  assert.ok(mounts.includes(
    "/neonvm/bin/mount -t iso9660 -o ro,mode=0644 $(/neonvm/bin/blkid -L conf) '/etc/app'",
  ));
  assert.ok(mounts.includes("/neonvm/bin/mkdir -p '/etc/w'"));
  assert.ok(mounts.includes("/neonvm/bin/mount -t tmpfs -o size=67108864 scratch '/scratch'"));
  assert.ok(mounts.includes("/neonvm/bin/sh /neonvm/runtime/resize-swap-internal.sh 2147483648"));
  assert.ok(
    mounts.includes("/neonvm/bin/mount -o remount,size=2147483648 /dev/shm"),
    "swap > mem/2",
  );
  assert.ok(f["resize-swap-internal.sh"]?.includes("mkswap -L swapdisk"));
  assert.deepEqual(plan.tasks.map((t) => `${t.kind}:${t.name}`), [
    "iso:ssh-authorized-keys",
    "swap:swapdisk",
    "emptyDisk:cache",
    "iso:conf",
  ]);
  assert.deepEqual(plan.tasks.find((t) => t.name === "conf"), {
    kind: "iso",
    name: "conf",
    sourceDir: "/vm/mounts/etc/app",
    path: "/vm/images/conf.iso",
  });
  assert.deepEqual(plan.drives.map((d) => d.id), [
    "rootdisk",
    "runtime",
    "ssh-authorized-keys",
    "swapdisk",
    "cache",
    "conf",
  ]);
  assert.deepEqual(plan.drives.find((d) => d.id === "cache")?.options, [
    "cache=none",
    "discard=unmap",
  ]);
});

Deno.test("no command/args means no command.sh/args.sh", () => {
  const plan = planDisks({
    spec: specFixture(),
    paths,
    diskCacheSettings: "cache=none",
    sshKeys: false,
  });
  assert.deepEqual(Object.keys(plan.runtimeFiles).sort(), ["env.sh", "mounts.sh", "sysctl.conf"]);
  assert.equal(plan.runtimeFiles["env.sh"], "");
});

Deno.test("shellQuote round-trips any string through sh", async () => {
  const samples = fc.sample(fc.string({ maxLength: 20 }).filter((s) => !s.includes("\0")), 40);
  const script = samples.map((s) => `printf '%s\\0' ${shellQuote(s)}`).join("\n");
  const out = await new Deno.Command("sh", { args: ["-c", script], stdout: "piped" }).output();
  const got = new TextDecoder().decode(out.stdout).split("\0").slice(0, -1);
  assert.deepEqual(got, samples);
});
