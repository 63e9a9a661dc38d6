/** Tests for module selection and the cpio encoder. */
import assert from "node:assert/strict";
import { moduleClosure, parseModulesDep, renderModulesDep } from "./modules.ts";
import { encodeCpio } from "./cpio.ts";

const DEP = `kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
`;

Deno.test("moduleClosure orders dependencies first and reports unknown names", () => {
  const deps = parseModulesDep(DEP);
  const { ordered, builtinOrMissing } = moduleClosure(deps, ["virtio_blk", "virtio_pci", "ext4"]);
  assert.deepEqual(ordered, [
    "kernel/drivers/virtio/virtio.ko",
    "kernel/drivers/virtio/virtio_ring.ko",
    "kernel/drivers/block/virtio_blk.ko",
    "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
    "kernel/drivers/virtio/virtio_pci.ko",
  ]);
  assert.deepEqual(builtinOrMissing, ["ext4"]);
  assert.match(renderModulesDep(deps, ordered), /^kernel\/drivers\/virtio\/virtio\.ko:\n/);
});

Deno.test("the real kernel's modules.dep resolves every guest module", async () => {
  const dirs = [...Deno.readDirSync("/lib/modules")].map((d) => d.name);
  const ver = dirs.find((d) => d.endsWith("cloud-amd64"));
  if (ver === undefined) return; // no cloud kernel installed on this machine
  const deps = parseModulesDep(await Deno.readTextFile(`/lib/modules/${ver}/modules.dep`));
  const { builtinOrMissing } = moduleClosure(deps, ["virtio_pci", "virtio_blk", "virtio_mem"]);
  assert.deepEqual(builtinOrMissing, []);
});

Deno.test("cpio output is accepted by cpio -t", async () => {
  const bytes = encodeCpio([
    { name: "bin", type: "dir", mode: 0o755 },
    { name: "bin/x", type: "file", mode: 0o755, data: new TextEncoder().encode("abc") },
    { name: "bin/sh", type: "symlink", mode: 0o777, data: new TextEncoder().encode("x") },
  ]);
  const p = new Deno.Command("busybox", {
    args: ["cpio", "-t"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = p.stdin.getWriter();
  await w.write(bytes);
  await w.close();
  const out = await p.output();
  assert.equal(new TextDecoder().decode(out.stdout), "bin\nbin/x\nbin/sh\n");
});
