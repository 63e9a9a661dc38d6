/**
 * Tests of the test guest's scripts: every script parses with busybox sh, the daemon stand-in
 * serves GET/PUT /cpu on a fake sysfs tree, and the workload starter honours command/args/env.
 * @module
 */
import assert from "node:assert/strict";
import {
  guestBlkidShim,
  guestNeonvmdStandIn,
  guestPowerButtonAction,
  guestReporter,
  guestUdhcpcScript,
  guestUeventHook,
  guestVminit,
  guestVmshutdown,
  guestVmstart,
  initramfsInit,
} from "./guest_files.ts";

const canRun = (() => {
  try {
    Deno.statSync("/bin/busybox");
    return true;
  } catch {
    return false;
  }
})();

async function sh(script: string, stdin = ""): Promise<{ code: number; out: string }> {
  const p = new Deno.Command("/bin/busybox", {
    args: ["sh", "-c", script],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = p.stdin.getWriter();
  await w.write(new TextEncoder().encode(stdin));
  await w.close();
  const o = await p.output();
  return { code: o.code, out: new TextDecoder().decode(o.stdout) };
}

Deno.test({
  name: "every guest script is valid busybox sh",
  ignore: !canRun,
  fn: async () => {
    const scripts = {
      initramfsInit: initramfsInit(["virtio"]),
      guestVminit: guestVminit(),
      guestVmstart: guestVmstart(),
      guestVmshutdown: guestVmshutdown(),
      guestReporter: guestReporter(),
      guestUeventHook: guestUeventHook(),
      guestPowerButtonAction: guestPowerButtonAction(),
      guestBlkidShim: guestBlkidShim(),
      guestUdhcpcScript: guestUdhcpcScript(),
      guestNeonvmdStandIn: guestNeonvmdStandIn(),
    };
    const dir = await Deno.makeTempDir();
    try {
      for (const [name, text] of Object.entries(scripts)) {
        await Deno.writeTextFile(`${dir}/${name}`, text);
        const r = await sh(`/bin/busybox sh -n '${dir}/${name}'`);
        assert.equal(r.code, 0, `${name} does not parse`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "daemon stand-in: GET and PUT /cpu on a fake sysfs",
  ignore: !canRun,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      for (const c of [0, 1, 2]) await Deno.mkdir(`${dir}/cpu${c}`);
      await Deno.writeTextFile(`${dir}/online`, "0\n");
      await Deno.writeTextFile(`${dir}/cpu1/online`, "0\n");
      await Deno.writeTextFile(`${dir}/cpu2/online`, "0\n");
      const script = guestNeonvmdStandIn().replace(
        "cpu=/sys/devices/system/cpu",
        `cpu='${dir}'`,
      );
      await Deno.writeTextFile(`${dir}/d.sh`, script);
      const get = await sh(`/bin/busybox sh '${dir}/d.sh'`, "GET /cpu HTTP/1.1\r\nHost: g\r\n\r\n");
      assert.match(get.out, /^HTTP\/1\.1 200 OK\r\n/);
      assert.ok(get.out.endsWith("\r\n\r\n1000"));
      const put = await sh(
        `/bin/busybox sh '${dir}/d.sh'`,
        "PUT /cpu HTTP/1.1\r\nContent-Length: 4\r\n\r\n2500",
      );
      assert.match(put.out, /^HTTP\/1\.1 200 OK/);
      assert.equal((await Deno.readTextFile(`${dir}/cpu1/online`)).trim(), "1");
      assert.equal((await Deno.readTextFile(`${dir}/cpu2/online`)).trim(), "1");
      const bad = await sh(
        `/bin/busybox sh '${dir}/d.sh'`,
        "PUT /cpu HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
      );
      assert.match(bad.out, /^HTTP\/1\.1 400/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
