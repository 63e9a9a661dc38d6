/**
 * Writing the output image: one gzip layer holding `/disk.qcow2` and a static busybox (so the
 * runner pod's init container can `sh -c "mv /disk.qcow2 ... && chown ... && sysctl ..."`),
 * wrapped in an OCI archive tar. Entries are sorted with fixed owners and mtimes, so the same disk
 * gives the same archive. Writes to a temporary name and renames at the end.
 * @module
 */
import { createHash } from "node:crypto";
import { buildOutputImage } from "../core/oci.ts";
import { encodeTarHeader, type TarHeader, tarPadding, tarTrailer } from "../core/tar.ts";

/** Busybox applets linked in the output image's /bin (what the init containers use). */
export const IMAGE_APPLETS = [
  "[",
  "cat",
  "chmod",
  "chown",
  "cp",
  "ln",
  "ls",
  "mkdir",
  "mv",
  "rm",
  "sh",
  "sysctl",
  "test",
] as const;

type Chunked = AsyncGenerator<Uint8Array, void, void>;

async function* fileChunks(path: string): Chunked {
  using f = await Deno.open(path);
  const buf = new Uint8Array(1 << 20);
  for (;;) {
    const n = await f.read(buf);
    if (n === null) return;
    yield buf.slice(0, n);
  }
}

async function* entry(h: TarHeader, dataPath?: string): Chunked {
  yield encodeTarHeader(h);
  if (dataPath !== undefined) {
    yield* fileChunks(dataPath);
    const pad = tarPadding(h.size);
    if (pad > 0) yield new Uint8Array(pad);
  }
}

async function* layerTar(diskPath: string, busyboxPath: string, mtimeSec: number): Chunked {
  const diskSize = (await Deno.stat(diskPath)).size;
  const bbSize = (await Deno.stat(busyboxPath)).size;
  const base = { mode: 0o755, mtimeSec, size: 0 };
  yield* entry({ ...base, name: "bin", type: "dir" });
  const names = ["busybox", ...IMAGE_APPLETS].sort();
  for (const n of names) {
    if (n === "busybox") {
      yield* entry({ ...base, name: "bin/busybox", type: "file", size: bbSize }, busyboxPath);
    } else {
      yield* entry({
        ...base,
        name: `bin/${n}`,
        type: "symlink",
        mode: 0o777,
        linkName: "busybox",
      });
    }
  }
  yield* entry(
    { ...base, name: "disk.qcow2", type: "file", mode: 0o644, size: diskSize },
    diskPath,
  );
  yield tarTrailer();
}

/** Writes the gzip layer blob to `blobPath`; returns its digest, size and uncompressed digest. */
async function writeLayer(
  diskPath: string,
  busyboxPath: string,
  mtimeSec: number,
  blobPath: string,
): Promise<{ digest: string; size: number; diffId: string }> {
  const diff = createHash("sha256");
  const comp = createHash("sha256");
  let size = 0;
  const out = await Deno.open(blobPath, { write: true, create: true, truncate: true });
  await ReadableStream.from(layerTar(diskPath, busyboxPath, mtimeSec))
    .pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, c) {
          diff.update(chunk);
          c.enqueue(chunk);
        },
      }),
    )
    .pipeThrough(
      new CompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>,
    )
    .pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, c) {
          comp.update(chunk);
          size += chunk.length;
          c.enqueue(chunk);
        },
      }),
    )
    .pipeTo(out.writable);
  return { digest: `sha256:${comp.digest("hex")}`, size, diffId: `sha256:${diff.digest("hex")}` };
}

function sha256Hex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Result of {@linkcode writeOciArchive}. */
export interface OciArchiveResult {
  readonly manifestDigest: string;
  readonly layerDigest: string;
  readonly archiveBytes: number;
}

/** Writes the OCI archive for `diskPath` to `outPath` (atomically, via a temp name in the same dir). */
export async function writeOciArchive(opts: {
  diskPath: string;
  busyboxPath: string;
  outPath: string;
  workDir: string;
  ref: string;
  mtimeSec: number;
  labels: Readonly<Record<string, string>>;
}): Promise<OciArchiveResult> {
  const enc = new TextEncoder();
  const layerPath = `${opts.workDir}/layer.tar.gz`;
  const layer = await writeLayer(opts.diskPath, opts.busyboxPath, opts.mtimeSec, layerPath);
  const docs = buildOutputImage({
    layer,
    ref: opts.ref,
    createdSec: opts.mtimeSec,
    labels: opts.labels,
  });
  const config = enc.encode(docs.config);
  const configDigest = `sha256:${sha256Hex(config)}`;
  const manifest = enc.encode(docs.manifest(configDigest, config.length));
  const manifestDigest = `sha256:${sha256Hex(manifest)}`;
  const index = enc.encode(docs.index(manifestDigest, manifest.length));
  const layoutFile = enc.encode(JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  const small = new Map<string, Uint8Array>([
    [configDigest, config],
    [manifestDigest, manifest],
  ]);
  const blobs = [configDigest, manifestDigest, layer.digest].sort();
  const t = opts.mtimeSec;
  async function* archive(): Chunked {
    yield* memEntry("oci-layout", layoutFile);
    yield* memEntry("index.json", index);
    yield* entry({ name: "blobs", type: "dir", mode: 0o755, mtimeSec: t, size: 0 });
    yield* entry({ name: "blobs/sha256", type: "dir", mode: 0o755, mtimeSec: t, size: 0 });
    for (const d of blobs) {
      const name = `blobs/sha256/${d.slice("sha256:".length)}`;
      const data = small.get(d);
      if (data) yield* memEntry(name, data);
      else {yield* entry(
          { name, type: "file", mode: 0o644, mtimeSec: t, size: layer.size },
          layerPath,
        );}
    }
    yield tarTrailer();
  }
  async function* memEntry(name: string, data: Uint8Array): Chunked {
    yield encodeTarHeader({ name, type: "file", mode: 0o644, mtimeSec: t, size: data.length });
    yield data;
    const pad = tarPadding(data.length);
    if (pad > 0) yield new Uint8Array(pad);
  }
  const tmp = `${opts.outPath}.tmp-${Deno.pid}`;
  try {
    const out = await Deno.open(tmp, { write: true, create: true, truncate: true });
    await ReadableStream.from(archive()).pipeTo(out.writable);
    await Deno.rename(tmp, opts.outPath);
  } catch (err) {
    await Deno.remove(tmp).catch(() => undefined);
    throw err;
  } finally {
    await Deno.remove(layerPath).catch(() => undefined);
  }
  return {
    manifestDigest,
    layerDigest: layer.digest,
    archiveBytes: (await Deno.stat(opts.outPath)).size,
  };
}
