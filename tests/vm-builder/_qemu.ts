/**
 * Test helper: boots a vm-builder root disk directly with qemu-system-x86_64 under TCG, the way
 * the runner does (reference §6.3: q35, virtio disks, runtime ISO in the §6.2 layout, virtio-mem,
 * the kernel command line, serial console on ttyS1), with user-mode networking forwarding guest
 * ports to loopback. Only for tests; never used by the builder.
 * @module
 */
import { buildInitrd, findCloudKernel } from "../../vm-builder/io/initrd.ts";
import { findTool, run } from "../../vm-builder/io/exec.ts";

/** A running guest. */
export interface Guest extends AsyncDisposable {
  /** Host loopback port forwarded to each requested guest port. */
  readonly ports: ReadonlyMap<number, number>;
  /** Everything the guest printed on its console (ttyS1) so far. */
  consoleText(): string;
  /** Sends a QMP command and returns the parsed reply. */
  qmp(command: string, args?: Record<string, unknown>): Promise<unknown>;
  /** Runs a shell command on the guest's root shell (ttyS0 getty) and returns its output. */
  shell(command: string, timeoutMs: number): Promise<string>;
  /** Resolves with QEMU's exit code. */
  readonly exited: Promise<number>;
}

/** Returns a free loopback TCP port. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Extracts /disk.qcow2 from a vm-builder OCI archive into `dest`. */
export async function extractDisk(archive: string, dest: string, work: string): Promise<void> {
  const index = JSON.parse(await run("tar", ["-xOf", archive, "index.json"]));
  const mDigest: string = index.manifests[0].digest;
  const manifest = JSON.parse(
    await run("tar", ["-xOf", archive, `blobs/sha256/${mDigest.slice(7)}`]),
  );
  const layer: string = manifest.layers[0].digest;
  await run("tar", ["-xf", archive, "-C", work, `blobs/sha256/${layer.slice(7)}`]);
  await run("tar", ["-xzf", `${work}/blobs/sha256/${layer.slice(7)}`, "-C", work, "disk.qcow2"]);
  await Deno.rename(`${work}/disk.qcow2`, dest);
  await Deno.remove(`${work}/blobs`, { recursive: true });
}

/** Options for {@linkcode bootGuest}. */
export interface BootOptions {
  readonly disk: string;
  readonly work: string;
  /** Runtime ISO files (sysctl.conf, env.sh, command.sh, args.sh, mounts.sh). */
  readonly runtimeFiles: Readonly<Record<string, string>>;
  readonly guestPorts: readonly number[];
  readonly memMiB?: number;
  /** `-drive` values replacing the root + runtime pair (e.g. from the runner's disk plan). */
  readonly drives?: readonly string[];
}

/** True when QEMU, the cloud kernel and genisoimage are all present. */
export async function canBoot(): Promise<boolean> {
  return findTool("qemu-system-x86_64") !== undefined && findTool("genisoimage") !== undefined &&
    (await findCloudKernel()) !== undefined;
}

/** Boots the disk; dispose to power it off (ACPI, then kill after 30 s). */
export async function bootGuest(opts: BootOptions): Promise<Guest> {
  const kernel = (await findCloudKernel())!;
  const initrd = `${opts.work}/initrd.img`;
  await buildInitrd({
    version: kernel.version,
    moduleDir: `/lib/modules/${kernel.version}`,
    busyboxPath: findTool("busybox")!,
    outPath: initrd,
  });
  const isoDir = `${opts.work}/runtime`;
  await Deno.mkdir(isoDir, { recursive: true });
  for (const [name, text] of Object.entries(opts.runtimeFiles)) {
    await Deno.writeTextFile(`${isoDir}/${name}`, text);
  }
  const iso = `${opts.work}/runtime.iso`;
  await run("genisoimage", ["-quiet", "-R", "-J", "-V", "vmruntime", "-o", iso, isoDir]);
  const ports = new Map<number, number>();
  for (const p of opts.guestPorts) ports.set(p, freePort());
  const fwd = [...ports].map(([g, h]) => `,hostfwd=tcp:127.0.0.1:${h}-:${g}`).join("");
  const qmpSock = `${opts.work}/qmp.sock`;
  const ttySock = `${opts.work}/ttyS0.sock`;
  const mem = opts.memMiB ?? 1024;
  const child = new Deno.Command("qemu-system-x86_64", {
    args: [
      "-machine",
      "q35",
      "-nographic",
      "-no-reboot",
      "-nodefaults",
      "-qmp",
      `unix:${qmpSock},server=on,wait=off`,
      "-serial",
      `unix:${ttySock},server=on,wait=off`,
      "-serial",
      "stdio",
      ...(opts.drives ?? [
        `id=rootdisk,file=${opts.disk},if=virtio,media=disk,index=0,cache=unsafe`,
        `id=runtime,file=${iso},if=virtio,media=cdrom,readonly=on,cache=none`,
      ]).flatMap((d) => ["-drive", d]),
      "-cpu",
      "max",
      "-smp",
      "cpus=1,maxcpus=2,sockets=1,cores=2,threads=1",
      "-m",
      `size=${mem}M,slots=4,maxmem=${mem * 2}M`,
      "-object",
      `memory-backend-ram,id=vmem0,size=${mem}M`,
      "-device",
      "virtio-mem-pci,id=vm0,memdev=vmem0,block-size=8M,requested-size=0",
      "-netdev",
      `user,id=default${fwd}`,
      "-device",
      "virtio-net-pci,netdev=default",
      "-kernel",
      kernel.vmlinuz,
      "-initrd",
      initrd,
      "-append",
      "panic=-1 init=/neonvm/bin/init loglevel=6 root=/dev/vda rw memhp_default_state=online " +
      "memory_hotplug.online_policy=auto-movable memory_hotplug.auto_movable_ratio=401 " +
      "hostname=vm-test console=ttyS1",
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const dec = new TextDecoder();
  const pump = async (s: ReadableStream<Uint8Array>) => {
    for await (const chunk of s) text += dec.decode(chunk, { stream: true });
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  const exited = child.status.then(async (s) => {
    await pumps;
    return s.code;
  });

  const qmp = async (command: string, args?: Record<string, unknown>): Promise<unknown> => {
    const conn = await Deno.connect({ transport: "unix", path: qmpSock });
    try {
      const reader = conn.readable.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      const nextObj = async (): Promise<Record<string, unknown>> => {
        for (;;) {
          const nl = buf.indexOf("\n");
          if (nl >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            const obj = JSON.parse(line) as Record<string, unknown>;
            if (!("event" in obj)) return obj;
            continue;
          }
          const r = await reader.read();
          if (r.done) throw new Error("QMP closed");
          buf += r.value;
        }
      };
      const w = async (o: unknown) =>
        void await conn.write(new TextEncoder().encode(JSON.stringify(o) + "\n"));
      await nextObj(); // greeting
      await w({ execute: "qmp_capabilities" });
      await nextObj();
      await w(args ? { execute: command, arguments: args } : { execute: command });
      const reply = await nextObj();
      reader.releaseLock();
      return reply;
    } finally {
      conn.close();
    }
  };

  const shell = async (command: string, timeoutMs: number): Promise<string> => {
    const conn = await Deno.connect({ transport: "unix", path: ttySock });
    let finished = false;
    try {
      const marker = `__END_${Math.random().toString(36).slice(2)}__`;
      let out = "";
      const reading = (async () => {
        for await (const chunk of conn.readable) {
          out += dec.decode(chunk, { stream: true });
          if (new RegExp(`${marker}:[0-9]`).test(out)) break;
        }
        finished = true;
      })();
      await conn.write(new TextEncoder().encode(`\n${command}; echo ${marker}:$?\n`));
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        reading,
        new Promise((_, rej) =>
          timer = setTimeout(
            () => rej(new Error(`guest shell timeout: ${command}\n${out}`)),
            timeoutMs,
          )
        ),
      ]);
      clearTimeout(timer);
      const start = out.lastIndexOf(`${marker}:$?`);
      return out.slice(start >= 0 ? start : 0);
    } finally {
      // When the read loop ended, the readable already closed the connection.
      if (!finished) conn.close();
    }
  };

  return {
    ports,
    consoleText: () => text,
    qmp,
    shell,
    exited,
    async [Symbol.asyncDispose]() {
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        await qmp("system_powerdown");
        await Promise.race([exited, new Promise((r) => timer = setTimeout(r, 30_000))]);
      } catch {
        // QEMU already gone
      } finally {
        clearTimeout(timer);
      }
      try {
        child.kill("SIGKILL");
      } catch {
        // already exited
      }
      await exited;
    },
  };
}

/** Polls `fn` every `intervalMs` until it returns a value or `timeoutMs` passes. */
export async function waitFor<T>(
  what: string,
  timeoutMs: number,
  fn: () => Promise<T | undefined>,
  intervalMs = 2000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`, { cause: last });
}

/** Fetches Prometheus text and returns the samples of `name` (value per label set). */
export async function gaugeSamples(
  url: string,
  name: string,
): Promise<{ type?: string; values: number[] }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  let type: string | undefined;
  const values: number[] = [];
  for (const line of text.split("\n")) {
    if (line.startsWith(`# TYPE ${name} `)) type = line.split(" ")[3];
    else if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) {
      values.push(Number(line.split(" ").at(-1)));
    }
  }
  return { type, values };
}
