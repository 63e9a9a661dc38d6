/**
 * vm-builder CLI: turns an OCI image (layout dir, OCI archive, `docker save` tarball or registry
 * reference) plus a spec YAML into a NeonVM image (qcow2 root disk inside an OCI archive), builds
 * the guest initramfs, and runs the examples. Composition root only: flags -> zod -> io.
 * @module
 */
import { parseArgs } from "node:util";
import { z } from "zod";
import { ConfigError, errorChainMessage, ParseError } from "../src/lib/errors.ts";
import { createLogger, type Logger } from "../src/lib/log.ts";
import { parseBytes } from "../src/api/quantity.ts";
import { buildImage } from "./io/build.ts";
import { findContainerdSockets, importIntoContainerd } from "./io/containerd.ts";
import { findTool, step } from "./io/exec.ts";
import { buildInitrd, findCloudKernel } from "./io/initrd.ts";

const HELP = `vm-builder — build NeonVM guest images (neonvm-ts)

Usage:
  deno task vm-builder build --src <image> [options]
  deno task vm-builder initrd [--kernel-version V] [--out PATH]
  deno task vm-builder import <archive> [--containerd-socket S ...]
  deno task vm-builder example <name>          (e.g. pg16: builds vm-examples/pg16 from nothing)

build: <image> is an OCI layout directory (optionally <dir>:<tag>), an OCI archive or
'docker save' tarball, or a registry reference (pulled with skopeo when reachable).
  --spec FILE          spec YAML (commands, shutdownHook, merge, files; unknown fields rejected)
  --dst REF            output image reference (default vm-<source name>:latest)
  --out FILE           OCI archive to write (default /var/cache/neonvm-ts/images/<dst>.oci.tar)
  --file FILE          also write the bare qcow2 root disk here
  --size SIZE          root file system size (e.g. 2Gi, 1G) or "auto" (default: fit contents)
  --import             import into the local cluster's containerd (ctr -n k8s.io images import)
  --containerd-socket S  socket to import into (repeatable; default: discovered)
  --kernel-version V   kernel whose modules go in the guest (default: /boot/vmlinuz-*-cloud-amd64)
  --no-deno            do not ship Deno, neonvmd and vm-monitor
  --no-node-exporter   do not ship the metrics exporter on :9100
  --keep-work          keep the work directory (for debugging)
  --project-dir DIR    project whose src/ (neonvmd, vm-monitor) is shipped (default: this repo)
  SOURCE_DATE_EPOCH    timestamp for every file and the image (default 0)

initrd: writes the initramfs the runner passes with -initrd (virtio_pci + virtio_blk for
root=/dev/vda), default /var/cache/neonvm-ts/kernel/<version>/initrd.img, next to a vmlinuz copy.

Progress is logged as JSON lines on stderr; the result is one JSON line on stdout.`;

const encoder = new TextEncoder();

function stdout(text: string): void {
  Deno.stdout.writeSync(encoder.encode(text + "\n"));
}

function stderr(text: string): void {
  Deno.stderr.writeSync(encoder.encode(text + "\n"));
}

const CACHE_DIR = Deno.env.get("NEONVM_CACHE") ?? "/var/cache/neonvm-ts";
const PROJECT_DIR = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

const BuildFlagsSchema = z.strictObject({
  src: z.string().min(1, "--src is required"),
  spec: z.string().optional(),
  dst: z.string().regex(/^[a-z0-9][a-z0-9._\/:-]*$/, "must be an image reference").optional(),
  out: z.string().optional(),
  file: z.string().optional(),
  size: z.string().default("auto"),
  import: z.boolean().default(false),
  "containerd-socket": z.array(z.string()).default([]),
  "kernel-version": z.string().optional(),
  "no-deno": z.boolean().default(false),
  "no-node-exporter": z.boolean().default(false),
  "keep-work": z.boolean().default(false),
  "project-dir": z.string().optional(),
});

function parseFlags<T extends z.ZodType>(schema: T, values: Record<string, unknown>): z.infer<T> {
  const r = schema.safeParse(values);
  if (!r.success) {
    const text = r.error.issues.map((i) => `--${i.path.join(".")}: ${i.message}`).join("; ");
    throw new ConfigError(`Invalid flags: ${text}`);
  }
  return r.data;
}

function defaultDst(src: string): string {
  const base = src.replace(/\/+$/, "").split("/").at(-1)!.replace(/\.(oci\.)?(tar|tgz)$/, "")
    .replace(/[:@].*$/, "").toLowerCase().replace(/[^a-z0-9._-]/g, "-");
  return `vm-${base || "image"}:latest`;
}

async function cmdBuild(args: string[], log: Logger): Promise<void> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      src: { type: "string" },
      spec: { type: "string" },
      dst: { type: "string" },
      out: { type: "string" },
      file: { type: "string" },
      size: { type: "string" },
      import: { type: "boolean" },
      "containerd-socket": { type: "string", multiple: true },
      "kernel-version": { type: "string" },
      "no-deno": { type: "boolean" },
      "no-node-exporter": { type: "boolean" },
      "keep-work": { type: "boolean" },
      "project-dir": { type: "string" },
    },
  });
  const flags = parseFlags(BuildFlagsSchema, values);
  const dst = flags.dst ?? defaultDst(flags.src);
  const out = flags.out ?? `${CACHE_DIR}/images/${dst.replace(/[\/:]/g, "_")}.oci.tar`;
  await Deno.mkdir(out.slice(0, out.lastIndexOf("/")) || ".", { recursive: true });
  let sizeBytes: number | undefined;
  if (flags.size !== "auto") {
    const parsed = parseBytes(flags.size);
    if (parsed === undefined || Number(parsed) <= 0) {
      throw new ConfigError(
        `Invalid flags: --size: "${flags.size}" is not a size (e.g. 2Gi, 1G, auto)`,
      );
    }
    sizeBytes = Number(parsed);
  }
  const epoch = Number(Deno.env.get("SOURCE_DATE_EPOCH") ?? "0");
  if (!Number.isInteger(epoch) || epoch < 0) {
    throw new ConfigError("SOURCE_DATE_EPOCH must be a non-negative integer");
  }
  const result = await buildImage({
    src: flags.src,
    specPath: flags.spec,
    dst,
    out,
    file: flags.file,
    sizeBytes,
    epochSec: epoch,
    kernelVersion: flags["kernel-version"],
    projectDir: flags["project-dir"] ?? PROJECT_DIR,
    cacheDir: CACHE_DIR,
    keepWork: flags["keep-work"],
    withDeno: !flags["no-deno"],
    withNodeExporter: !flags["no-node-exporter"],
  }, log);
  let imported: string[] = [];
  if (flags.import) {
    const sockets = flags["containerd-socket"].length > 0
      ? flags["containerd-socket"]
      : await findContainerdSockets(PROJECT_DIR);
    if (sockets.length === 0) {
      throw new ConfigError("--import: no containerd socket found (is the local cluster up?)");
    }
    await step(log, "import", () => importIntoContainerd(result.out, sockets), { sockets });
    imported = sockets;
  }
  stdout(JSON.stringify({ ...result, imported }));
}

async function cmdInitrd(args: string[], log: Logger): Promise<void> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: { "kernel-version": { type: "string" }, out: { type: "string" } },
  });
  const kernel = values["kernel-version"]
    ? { version: values["kernel-version"], vmlinuz: `/boot/vmlinuz-${values["kernel-version"]}` }
    : await findCloudKernel();
  if (kernel === undefined) {
    throw new ConfigError("No Debian cloud kernel in /boot; pass --kernel-version");
  }
  const busybox = findTool("busybox");
  if (busybox === undefined) {
    throw new ConfigError(
      'Required tool "busybox" is not installed (Debian package: busybox-static)',
    );
  }
  const dir = `${CACHE_DIR}/kernel/${kernel.version}`;
  const out = values.out ?? `${dir}/initrd.img`;
  await Deno.mkdir(out.slice(0, out.lastIndexOf("/")) || ".", { recursive: true });
  const res = await step(
    log,
    "initrd",
    () =>
      buildInitrd({
        version: kernel.version,
        moduleDir: `/lib/modules/${kernel.version}`,
        busyboxPath: busybox,
        outPath: out,
      }),
  );
  let vmlinuz: string | undefined;
  if (values.out === undefined) {
    vmlinuz = `${dir}/vmlinuz`;
    await Deno.copyFile(kernel.vmlinuz, `${vmlinuz}.tmp`);
    await Deno.rename(`${vmlinuz}.tmp`, vmlinuz);
  }
  stdout(JSON.stringify({ initrd: out, vmlinuz, kernelVersion: kernel.version, ...res }));
}

async function cmdImport(args: string[], log: Logger): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    strict: true,
    allowPositionals: true,
    options: { "containerd-socket": { type: "string", multiple: true } },
  });
  const archive = positionals[0];
  if (archive === undefined || positionals.length !== 1) {
    throw new ConfigError("Usage: vm-builder import <archive> [--containerd-socket S ...]");
  }
  try {
    await Deno.stat(archive);
  } catch (err) {
    throw new ConfigError(`Archive "${archive}" does not exist`, { cause: err });
  }
  const sockets = values["containerd-socket"] ?? await findContainerdSockets(PROJECT_DIR);
  if (sockets.length === 0) {
    throw new ConfigError("No containerd socket found (is the local cluster up?)");
  }
  await step(log, "import", () => importIntoContainerd(archive, sockets), { archive, sockets });
  stdout(JSON.stringify({ archive, imported: sockets }));
}

async function cmdExample(args: string[]): Promise<void> {
  const name = args[0];
  if (name === undefined || !/^[a-z0-9_-]+$/.test(name)) {
    throw new ConfigError("Usage: vm-builder example <name>");
  }
  const script = `${PROJECT_DIR}/vm-examples/${name}/build.ts`;
  try {
    await Deno.stat(script);
  } catch {
    throw new ConfigError(`No example "${name}" (expected ${script})`);
  }
  const child = new Deno.Command(Deno.execPath(), { args: ["run", "-A", script, ...args.slice(1)] })
    .spawn();
  const status = await child.status;
  if (!status.success) Deno.exit(status.code || 1);
}

async function main(argv: string[]): Promise<number> {
  const log = createLogger("vm-builder");
  const [cmd, ...rest] = argv;
  if (
    cmd === undefined || cmd === "--help" || cmd === "-h" || cmd === "help" ||
    rest.includes("--help")
  ) {
    stdout(HELP);
    return cmd === undefined ? 2 : 0;
  }
  try {
    switch (cmd) {
      case "build":
        await cmdBuild(rest, log);
        return 0;
      case "initrd":
        await cmdInitrd(rest, log);
        return 0;
      case "import":
        await cmdImport(rest, log);
        return 0;
      case "example":
        await cmdExample(rest);
        return 0;
      default:
        throw new ConfigError(`Unknown command "${cmd}" (see --help)`);
    }
  } catch (err) {
    log.error("vm-builder failed", { error: err });
    const kind = err instanceof ParseError || err instanceof ConfigError
      ? ""
      : `${(err as Error).name ?? "Error"}: `;
    stderr(`vm-builder: ${kind}${errorChainMessage(err)}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
