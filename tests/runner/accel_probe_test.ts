/**
 * Tests of accelerator detection: explicit choices win, `enableAcceleration: false` means TCG,
 * and on a host with QEMU the KVM probe agrees with whether a KVM guest really runs.
 * @module
 */
import assert from "node:assert/strict";
import { detectAccelerator, probeKvm } from "../../src/runner/io/run.ts";

Deno.test("explicit choice and enableAcceleration=false need no probing", async () => {
  assert.deepEqual(await detectAccelerator("tcg", true), {
    accelerator: "tcg",
    reason: "-accel=tcg",
  });
  assert.equal((await detectAccelerator("kvm", false)).accelerator, "kvm");
  assert.equal((await detectAccelerator("auto", false)).accelerator, "tcg");
});

const hasQemu = (() => {
  try {
    Deno.statSync("/usr/bin/qemu-system-x86_64");
    return true;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "auto picks KVM only when the probe guest runs",
  ignore: !hasQemu,
  fn: async () => {
    const d = await detectAccelerator("auto", true);
    const probe = await probeKvm("qemu-system-x86_64");
    assert.equal(d.accelerator === "kvm", probe, d.reason);
    assert.equal(await probeKvm("/bin/false"), false, "a QEMU that prints nothing is no KVM");
  },
});
