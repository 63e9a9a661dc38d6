/**
 * vm-builder end to end on a small busybox image: bad specs and missing inputs fail with a message
 * naming the problem and leave nothing behind; two builds of the same input are byte-identical;
 * the built disk boots under QEMU (TCG) and runs the workload from the runtime disk as the image
 * user in the neon-postgres cgroup, with the metrics exporter, neonvmd and the vm-monitor up,
 * CPU and memory hotplug onlined, and a clean ACPI power-button shutdown running the hook.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { writeLayoutFromDir } from "../../vm-builder/io/oci_layout.ts";
import { importIntoContainerd } from "../../vm-builder/io/containerd.ts";
import { bootGuest, canBoot, extractDisk, gaugeSamples, waitFor } from "./_qemu.ts";
import { canRunContainerd, startContainerd } from "./_containerd.ts";

const ROOT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const CACHE = Deno.env.get("NEONVM_CACHE") ?? "/var/cache/neonvm-ts";
const dec = new TextDecoder();

async function builder(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}/vm-builder/main.ts`, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function sha256(path: string): Promise<string> {
  const h = createHash("sha256");
  using f = await Deno.open(path);
  for await (const c of f.readable) h.update(c);
  return h.digest("hex");
}

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) names.push(e.name);
  } catch {
    // missing dir = empty
  }
  return names.sort();
}

/** A tiny image: static busybox, a non-root user, CMD that just sleeps (the VM overrides it). */
async function makeInput(dir: string): Promise<string> {
  const rootfs = `${dir}/rootfs`;
  for (const d of ["bin", "etc", "tmp", "root"]) {
    await Deno.mkdir(`${rootfs}/${d}`, { recursive: true });
  }
  await Deno.copyFile("/usr/bin/busybox", `${rootfs}/bin/busybox`);
  await Deno.chmod(`${rootfs}/bin/busybox`, 0o755);
  await Deno.symlink("busybox", `${rootfs}/bin/sh`);
  await Deno.chmod(`${rootfs}/tmp`, 0o1777);
  await Deno.writeTextFile(
    `${rootfs}/etc/passwd`,
    "root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1000:web:/tmp:/bin/sh\n",
  );
  await Deno.writeTextFile(`${rootfs}/etc/group`, "root:x:0:\nweb:x:1000:\n");
  await writeLayoutFromDir(rootfs, `${dir}/layout`, {
    env: ["PATH=/bin", "FROM_IMAGE=yes"],
    cmd: ["/bin/busybox", "sleep", "1000000"],
    user: "web",
  }, "t1");
  return `${dir}/layout`;
}

const SPEC = `commands:
  - name: vm-monitor
    user: root
    sysvInitAction: respawn
    shell: exec /neonvm/bin/vm-monitor --addr 0.0.0.0:10301
shutdownHook: |
  echo "shutdown hook ran"
  for p in $(cat /sys/fs/cgroup/neon-postgres/cgroup.procs); do kill $p; done
files:
  - filename: motd
    content: "built by vm-builder\\n"
merge: |
  COPY motd /etc/motd
  RUN echo merged > /etc/merged
  ENV FROM_MERGE=1
`;

Deno.test("vm-builder: a spec with an unknown field fails, names it, writes nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "vmb-test-" });
  try {
    await Deno.writeTextFile(
      `${dir}/bad.yaml`,
      "commands:\n  - name: a\n    user: root\n    sysvInitAction: once\n    shell: x\n    nice: 5\n",
    );
    await Deno.mkdir(`${dir}/out`);
    const r = await builder([
      "build",
      "--src",
      "/nonexistent",
      "--spec",
      `${dir}/bad.yaml`,
      "--out",
      `${dir}/out/x.tar`,
    ]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /unknown field commands\.0\.nice/);
    assert.deepEqual(await listDir(`${dir}/out`), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("vm-builder: a missing input image fails, names it, writes nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "vmb-test-" });
  try {
    await Deno.mkdir(`${dir}/out`);
    const before = await listDir(`${CACHE}/vm-builder`);
    const r = await builder([
      "build",
      "--src",
      `${dir}/no-such-image.tar`,
      "--out",
      `${dir}/out/x.tar`,
      "--file",
      `${dir}/out/x.qcow2`,
    ]);
    assert.equal(r.code, 1);
    assert.ok(r.stderr.includes(`Input image "${dir}/no-such-image.tar" does not exist`), r.stderr);
    assert.deepEqual(await listDir(`${dir}/out`), []);
    assert.deepEqual(await listDir(`${CACHE}/vm-builder`), before, "work dir left behind");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("vm-builder: a failure late in the build (disk too small) writes nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "vmb-test-" });
  try {
    const layout = await makeInput(dir);
    await Deno.mkdir(`${dir}/out`);
    const before = await listDir(`${CACHE}/vm-builder`);
    const r = await builder([
      "build",
      "--src",
      layout,
      "--size",
      "1Mi",
      "--no-deno",
      "--no-node-exporter",
      "--out",
      `${dir}/out/x.tar`,
      "--file",
      `${dir}/out/x.qcow2`,
    ]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Disk size 1048576 bytes is too small/);
    assert.match(r.stderr, /"step done","step":"unpack"/);
    assert.deepEqual(await listDir(`${dir}/out`), []);
    assert.deepEqual(await listDir(`${CACHE}/vm-builder`), before, "work dir left behind");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "vm-builder: two builds are identical, and the image boots and runs everything",
  ignore: !(await canBoot()),
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "vmb-test-", dir: CACHE });
    try {
      const layout = await makeInput(dir);
      await Deno.writeTextFile(`${dir}/spec.yaml`, SPEC);
      // Snapshot the project: other work may change src/ between the two builds.
      await Deno.mkdir(`${dir}/project`);
      for (const f of ["deno.json", "deno.lock"]) {
        await Deno.copyFile(`${ROOT}/${f}`, `${dir}/project/${f}`);
      }
      const cp = await new Deno.Command("cp", { args: ["-a", `${ROOT}/src`, `${dir}/project/src`] })
        .output();
      assert.equal(cp.code, 0);
      const outs = [`${dir}/a.oci.tar`, `${dir}/b.oci.tar`];
      for (const out of outs) {
        const r = await builder([
          "build",
          "--src",
          layout,
          "--spec",
          `${dir}/spec.yaml`,
          "--dst",
          "vmb-test:1",
          "--out",
          out,
          "--file",
          `${out}.qcow2`,
          "--project-dir",
          `${dir}/project`,
        ]);
        assert.equal(r.code, 0, r.stderr.slice(-3000));
        const result = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
        assert.equal(result.ref, "docker.io/library/vmb-test:1");
        // Progress: one JSON line per step.
        const steps = r.stderr.split("\n").filter((l) => l.includes('"step done"')).map((l) =>
          JSON.parse(l).step
        );
        for (const s of ["fetch", "unpack", "merge", "mkfs", "qcow2", "oci-archive"]) {
          assert.ok(steps.includes(s), s);
        }
      }
      if ((await sha256(outs[0]!)) !== (await sha256(outs[1]!))) {
        const keep = await Deno.makeTempDir({ prefix: "vmb-differ-", dir: CACHE });
        for (const o of outs) {
          await Deno.rename(`${o}.qcow2`, `${keep}/${o.slice(o.lastIndexOf("/") + 1)}.qcow2`);
        }
        assert.fail(`two builds differ; disks kept in ${keep}`);
      }

      // The archive imports into containerd, and the runner pod's init-container command
      // (reference §5.3) runs in it and leaves exactly the built disk in /vm/images.
      if (canRunContainerd()) {
        await Deno.mkdir(`${dir}/ctr/images`, { recursive: true });
        await using ctr = await startContainerd(`${dir}/ctr`);
        await importIntoContainerd(outs[0]!, [ctr.socket]);
        const initCmd =
          "mv /disk.qcow2 /vm/images/rootdisk.qcow2 && chown 36:34 /vm/images/rootdisk.qcow2 && sysctl -w net.ipv4.ip_forward=1";
        const r = await new Deno.Command("ctr", {
          args: [
            "-a",
            ctr.socket,
            "-n",
            "k8s.io",
            "run",
            "--rm",
            "--privileged",
            "--mount",
            `type=bind,src=${dir}/ctr/images,dst=/vm/images,options=rbind:rw`,
            "docker.io/library/vmb-test:1",
            "init",
            "sh",
            "-c",
            initCmd,
          ],
          stdout: "piped",
          stderr: "piped",
        }).output();
        assert.equal(r.code, 0, dec.decode(r.stderr));
        const st = await Deno.stat(`${dir}/ctr/images/rootdisk.qcow2`);
        assert.equal(st.uid, 36);
        assert.equal(st.gid, 34);
        assert.equal(
          await sha256(`${dir}/ctr/images/rootdisk.qcow2`),
          await sha256(`${outs[0]}.qcow2`),
        );
        await Deno.remove(`${dir}/ctr/images/rootdisk.qcow2`);
      }

      await Deno.mkdir(`${dir}/vm`);
      await extractDisk(outs[0]!, `${dir}/vm/disk.qcow2`, `${dir}/vm`);
      const command = [
        "/bin/sh",
        "-c",
        'mkdir -p /tmp/www && { echo "$GREETING"; id -u; echo "$FROM_IMAGE$FROM_MERGE"; cat /proc/self/cgroup; cat /etc/merged /etc/motd; } > /tmp/www/info && exec /bin/busybox httpd -f -p 8080 -h /tmp/www',
      ];
      const q = (w: string) => `'${w.replaceAll("'", `'\\''`)}'`;
      await using guest = await bootGuest({
        disk: `${dir}/vm/disk.qcow2`,
        work: `${dir}/vm`,
        runtimeFiles: {
          "sysctl.conf": "kernel.core_pattern=core\nkernel.core_uses_pid=1\n",
          "env.sh": "export GREETING='hi there'\n",
          "command.sh": command.map(q).join(" ") + "\n",
          "mounts.sh": "set -euo pipefail\n",
        },
        guestPorts: [8080, 9100, 25183, 10301],
      });
      const port = (p: number) => guest.ports.get(p)!;
      const info = await waitFor("workload on 8080", 180_000, async () => {
        const res = await fetch(`http://127.0.0.1:${port(8080)}/info`, {
          signal: AbortSignal.timeout(3000),
        });
        return res.ok ? await res.text() : (await res.body?.cancel(), undefined);
      });
      assert.equal(info, "hi there\n1000\nyes1\n0::/neon-postgres\nmerged\nbuilt by vm-builder\n");

      for (
        const g of [
          "node_load1",
          "node_load5",
          "node_memory_MemTotal_bytes",
          "node_memory_MemAvailable_bytes",
          "node_memory_Cached_bytes",
        ]
      ) {
        const s = await waitFor(`${g} on 9100`, 60_000, async () => {
          const r = await gaugeSamples(`http://127.0.0.1:${port(9100)}/metrics`, g);
          return r.values.length > 0 ? r : undefined;
        });
        assert.equal(s.type, "gauge", g);
        assert.equal(s.values.length, 1, g);
      }
      const memBefore =
        (await gaugeSamples(`http://127.0.0.1:${port(9100)}/metrics`, "node_memory_MemTotal_bytes"))
          .values[0]!;

      const cpu = await waitFor("neonvmd GET /cpu", 180_000, async () => {
        const res = await fetch(`http://127.0.0.1:${port(25183)}/cpu`, {
          signal: AbortSignal.timeout(3000),
        });
        return res.ok ? (await res.text()).trim() : (await res.body?.cancel(), undefined);
      });
      assert.equal(cpu, "1000");

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

      // CPU hot-add (QMP scaling mode): the guest onlines it; neonvmd then reports 2 CPUs.
      assert.deepEqual(
        await guest.qmp("device_add", {
          driver: "max-x86_64-cpu",
          "socket-id": 0,
          "core-id": 1,
          "thread-id": 0,
          id: "cpu1",
        }),
        { return: {} },
      );
      assert.equal(
        await waitFor("hot-added CPU online", 60_000, async () => {
          const t = (await (await fetch(`http://127.0.0.1:${port(25183)}/cpu`)).text()).trim();
          return t === "2000" ? t : undefined;
        }),
        "2000",
      );
      // virtio-mem: 256 MiB more, onlined by the kernel (auto-movable policy from the cmdline).
      await guest.qmp("qom-set", { path: "vm0", property: "requested-size", value: 256 * 2 ** 20 });
      await waitFor("hot-plugged memory online", 60_000, async () => {
        const v = (await gaugeSamples(
          `http://127.0.0.1:${port(9100)}/metrics`,
          "node_memory_MemTotal_bytes",
        )).values[0]!;
        return v >= memBefore + 200 * 2 ** 20 ? v : undefined;
      });

      // ACPI power button: acpid -> poweroff -> vmshutdown (hook) -> QEMU exits (-no-reboot).
      await guest.qmp("system_powerdown");
      let timer: ReturnType<typeof setTimeout> | undefined;
      const code = await Promise.race([
        guest.exited,
        new Promise<number>((r) => timer = setTimeout(() => r(-1), 60_000)),
      ]);
      clearTimeout(timer);
      assert.equal(code, 0, guest.consoleText().slice(-3000));
      assert.match(guest.consoleText(), /shutdown hook ran/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
