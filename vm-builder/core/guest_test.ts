/** Tests for the guest plan: inittab, vmstart privilege drop, wrappers, users, OCI docs. */
import assert from "node:assert/strict";
import { type GuestEntry, type GuestPlanInput, planGuest, renderInittab } from "./guest.ts";
import { buildOutputImage, normaliseRef, parseImageRuntime } from "./oci.ts";
import { resolveUser } from "./users.ts";

const BASE: GuestPlanInput = {
  runtime: {
    env: ["PATH=/usr/bin", "A=b c"],
    entrypoint: ["/entry.sh"],
    cmd: ["--x", "it's"],
    user: "",
    workingDir: "/srv",
  },
  user: { uid: 0, gid: 0, home: "/root", known: true },
  commands: [{
    name: "vm-monitor",
    user: "root",
    sysvInitAction: "respawn",
    shell: "exec /neonvm/bin/vm-monitor",
  }],
  shutdownHook: "pg_ctl stop",
  applets: ["sh", "ls", "busybox", "mount"],
  shipped: [{ name: "deno", env: { DENO_DIR: "/neonvm/deno-dir" } }, { name: "flock" }],
  modules: ["virtio_net", "virtio_mem"],
  loaderName: "ld-linux-x86-64.so.2",
  denoApps: { neonvmd: true, vmMonitor: true },
  nodeExporter: true,
};

function file(entries: GuestEntry[], path: string): string {
  const e = entries.find((x) => x.path === path);
  assert.ok(e && e.kind === "file", `no file ${path}`);
  return e.text;
}

Deno.test("inittab has the boot sequence, our daemons, spec commands and the shutdown hook", () => {
  const lines = renderInittab(BASE).split("\n");
  assert.equal(lines[1], "::sysinit:/neonvm/bin/vminit");
  assert.ok(lines.includes("::respawn:/neonvm/bin/neonvmd --addr=0.0.0.0:25183"));
  assert.ok(lines.includes("::respawn:/neonvm/bin/node-exporter"));
  assert.ok(lines.includes("::respawn:/neonvm/bin/vmstart"));
  assert.ok(
    lines.includes(
      "::respawn:/neonvm/bin/su -p -s /neonvm/bin/sh root -c /neonvm/config/commands/vm-monitor.sh",
    ),
  );
  assert.equal(lines.at(-2), "::shutdown:/neonvm/bin/vmshutdown");
  // No shell metacharacters: busybox init would otherwise run the line with the image's /bin/sh.
  for (const l of lines.filter((x) => !x.startsWith("#"))) {
    assert.doesNotMatch(l.split(":").slice(3).join(":"), /[;&|$`'"<>]/);
  }
});

Deno.test("plan: applets link to busybox, wrappers use the shipped loader, image config is quoted", () => {
  const entries = planGuest(BASE);
  assert.ok(
    entries.some((e) =>
      e.kind === "symlink" && e.path === "/neonvm/bin/mount" && e.target === "busybox"
    ),
  );
  assert.ok(
    !entries.some((e) => e.path === "/neonvm/bin/busybox"),
    "busybox itself is copied by io",
  );
  assert.match(
    file(entries, "/neonvm/bin/deno"),
    /exec \/neonvm\/lib\/ld-linux-x86-64\.so\.2 --library-path \/neonvm\/lib --argv0 deno \/neonvm\/libexec\/deno "\$@"/,
  );
  assert.match(file(entries, "/neonvm/bin/deno"), /export DENO_DIR=\/neonvm\/deno-dir/);
  assert.equal(file(entries, "/neonvm/config/cmd.sh"), `--x 'it'\\''s'\n`);
  assert.equal(
    file(entries, "/neonvm/config/image-env.sh"),
    "export PATH=/usr/bin\nexport A='b c'\n",
  );
  assert.equal(file(entries, "/neonvm/config/modules"), "virtio_net\nvirtio_mem\n");
  assert.match(file(entries, "/neonvm/bin/vmshutdown"), /shutdown-hook\.sh/);
  assert.match(file(entries, "/neonvm/acpi/PWRF/00000080"), /poweroff/);
  // Root workload: no privilege drop.
  assert.match(
    file(entries, "/neonvm/bin/vmstart"),
    /exec flock \/neonvm\/vmstart\.lock \/neonvm\/bin\/sh \$S/,
  );
});

Deno.test("vmstart drops to the image user; unknown numeric uids clear groups", () => {
  const named = planGuest({
    ...BASE,
    user: { uid: 100, gid: 102, home: "/var/lib/postgresql", known: true },
  });
  assert.match(
    file(named, "/neonvm/bin/vmstart"),
    /setpriv --reuid=100 --regid=102 --init-groups \/neonvm\/bin\/sh \$S/,
  );
  const numeric = planGuest({ ...BASE, user: { uid: 5000, gid: 5000, home: "/", known: false } });
  assert.match(file(numeric, "/neonvm/bin/vmstart"), /--clear-groups/);
  const noHook = planGuest({ ...BASE, shutdownHook: undefined });
  assert.ok(!noHook.some((e) => e.path === "/neonvm/config/shutdown-hook.sh"));
});

Deno.test("resolveUser handles names, uids, user:group and missing users", () => {
  const passwd = "root:x:0:0::/root:/bin/sh\npostgres:x:100:102:PG:/var/lib/postgresql:/bin/bash\n";
  const group = "root:x:0:\npostgres:x:102:\nssl:x:50:\n";
  assert.deepEqual(resolveUser("", passwd, group), { uid: 0, gid: 0, home: "/root", known: true });
  assert.deepEqual(resolveUser("postgres", passwd, group), {
    uid: 100,
    gid: 102,
    home: "/var/lib/postgresql",
    known: true,
  });
  assert.deepEqual(resolveUser("100:ssl", passwd, group), {
    uid: 100,
    gid: 50,
    home: "/var/lib/postgresql",
    known: true,
  });
  assert.deepEqual(resolveUser("4242", passwd, group), {
    uid: 4242,
    gid: 4242,
    home: "/",
    known: false,
  });
  assert.throws(() => resolveUser("nobody", passwd, group), /user "nobody" is not in the image/);
});

Deno.test("image config parsing and output documents", () => {
  const rt = parseImageRuntime({ config: { Env: ["A=1"], Cmd: ["x"], User: null } }, "t");
  assert.deepEqual(rt, { env: ["A=1"], entrypoint: [], cmd: ["x"], user: "", workingDir: "" });
  assert.equal(normaliseRef("vm-pg16"), "docker.io/library/vm-pg16:latest");
  assert.equal(normaliseRef("neonvm-ts/vm-pg16:dev"), "docker.io/neonvm-ts/vm-pg16:dev");
  assert.equal(normaliseRef("localhost:5000/x:1"), "localhost:5000/x:1");
  const docs = buildOutputImage({
    layer: { digest: "sha256:" + "a".repeat(64), size: 10, diffId: "sha256:" + "b".repeat(64) },
    ref: "docker.io/library/x:1",
    createdSec: 0,
    labels: {},
  });
  const cfg = JSON.parse(docs.config);
  assert.equal(cfg.created, "1970-01-01T00:00:00Z");
  assert.deepEqual(cfg.rootfs.diff_ids, ["sha256:" + "b".repeat(64)]);
  const idx = JSON.parse(docs.index("sha256:" + "c".repeat(64), 5));
  assert.equal(idx.manifests[0].annotations["io.containerd.image.name"], "docker.io/library/x:1");
  assert.equal(idx.manifests[0].annotations["org.opencontainers.image.ref.name"], "1");
});
