/**
 * Imports image archives (docker-archive or OCI archive tars) into node containerds, in the
 * `k8s.io` namespace the kubelet uses, unpacked for overlayfs. Remembers per node which image ID
 * it imported under which name so an unchanged image is not imported twice. Must not touch a
 * containerd other than the given node's socket.
 * @module
 */
import { exists, run, sha256Hex, StepError } from "../cluster/exec.ts";
import type { BuiltImage } from "./build.ts";

/** The node fields an import needs. */
export interface ImportTarget {
  /** Node name, for step names. */
  name: string;
  /** The node's containerd socket. */
  containerdSocket: string;
}

/** Imports `archive` into `node`'s containerd; returns the image references it created. */
export async function importArchive(
  node: ImportTarget,
  archive: string,
  logFile: string,
  baseName?: string,
): Promise<string[]> {
  const r = await run([
    "ctr",
    "-a",
    node.containerdSocket,
    "-n",
    "k8s.io",
    "images",
    "import",
    "--snapshotter",
    "overlayfs",
    // OCI archives may name images by tag only ("dev") or by a full reference; --base-name
    // names both (docker archives carry full names and need none).
    ...(baseName ? ["--base-name", baseName] : []),
    archive,
  ], { step: `${node.name}.image-import`, logFile, timeoutMs: 15 * 60_000 });
  // ctr prints "unpacking <ref> (sha256:...)...done" per image.
  return [...r.stdout.matchAll(/unpacking (\S+) \(/g)].map((m) => m[1] ?? "").filter(Boolean);
}

/** References present in `node`'s k8s.io namespace. */
export async function listImages(node: ImportTarget): Promise<string[]> {
  const r = await run(["ctr", "-a", node.containerdSocket, "-n", "k8s.io", "images", "ls", "-q"], {
    step: `${node.name}.image-list`,
  });
  return r.stdout.split("\n").map((s) => s.trim()).filter(Boolean);
}

/** Blob digests (`sha256:<hex>`) already in `node`'s content store. */
export async function contentDigests(node: ImportTarget): Promise<Set<string>> {
  const r = await run(["ctr", "-a", node.containerdSocket, "-n", "k8s.io", "content", "ls", "-q"], {
    step: `${node.name}.content-list`,
  });
  return new Set(r.stdout.split("\n").map((s) => s.trim()).filter(Boolean));
}

/** The OCI manifest and index for `image` (uncompressed layers); pure apart from hashing. */
export async function ociDocuments(
  image: Pick<BuiltImage, "ref" | "configJson" | "configDigest" | "layers">,
  layerSizes: readonly number[],
): Promise<{ manifest: string; manifestDigest: string; index: string }> {
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {
      mediaType: "application/vnd.oci.image.config.v1+json",
      digest: image.configDigest,
      size: new TextEncoder().encode(image.configJson).length,
    },
    layers: image.layers.map((l, i) => ({
      mediaType: "application/vnd.oci.image.layer.v1.tar",
      digest: `sha256:${l.sha256}`,
      size: layerSizes[i],
    })),
  });
  const manifestDigest = `sha256:${await sha256Hex(manifest)}`;
  const tag = image.ref.slice(image.ref.lastIndexOf(":") + 1);
  const index = JSON.stringify({
    schemaVersion: 2,
    manifests: [{
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      digest: manifestDigest,
      size: new TextEncoder().encode(manifest).length,
      platform: { architecture: "amd64", os: "linux" },
      annotations: {
        "io.containerd.image.name": image.ref,
        "org.opencontainers.image.ref.name": tag,
      },
    }],
  });
  return { manifest, manifestDigest, index };
}

/**
 * Imports `image` into `node` as an OCI archive streamed to `ctr images import -`, carrying only
 * the layer blobs the node's content store lacks (after a source change, just the source layer).
 */
export async function importDelta(
  node: ImportTarget,
  image: BuiltImage,
  stagingRoot: string,
  logFile: string,
): Promise<{ layersSent: number }> {
  try {
    return await importOnce(node, image, stagingRoot, logFile, false);
  } catch (error) {
    // Why: ctr import holds no lease, so containerd's garbage collector can drop a parent
    // snapshot (and its blobs) between the unpacker's check and its use when the image's tag
    // moves ("parent snapshot ... does not exist"). Seen once after many re-imports; a second,
    // full import (every layer sent) recreates what was dropped.
    if (!(error instanceof StepError) || !/does not exist|not found/.test(error.message)) {
      throw error;
    }
    await Deno.writeTextFile(logFile, `retrying with every layer: ${error.message}\n`, {
      append: true,
    });
    return await importOnce(node, image, stagingRoot, logFile, true);
  }
}

async function importOnce(
  node: ImportTarget,
  image: BuiltImage,
  stagingRoot: string,
  logFile: string,
  full: boolean,
): Promise<{ layersSent: number }> {
  const step = `${node.name}.image-import`;
  const have = full ? new Set<string>() : await contentDigests(node);
  const sizes = await Promise.all(image.layers.map(async (l) => (await Deno.stat(l.path)).size));
  const docs = await ociDocuments(image, sizes);
  const staging = `${stagingRoot}/oci-${node.name}.staging`;
  await Deno.remove(staging, { recursive: true }).catch(() => {});
  await Deno.mkdir(`${staging}/blobs/sha256`, { recursive: true });
  let layersSent = 0;
  try {
    await Deno.writeTextFile(`${staging}/oci-layout`, '{"imageLayoutVersion":"1.0.0"}');
    await Deno.writeTextFile(`${staging}/index.json`, docs.index);
    const blob = (d: string) => `${staging}/blobs/sha256/${d.replace("sha256:", "")}`;
    await Deno.writeTextFile(blob(docs.manifestDigest), docs.manifest);
    await Deno.writeTextFile(blob(image.configDigest), image.configJson);
    for (const l of image.layers) {
      if (have.has(`sha256:${l.sha256}`)) continue;
      await Deno.link(l.path, blob(l.sha256)); // same file system as the cache
      layersSent++;
    }
    const tar = new Deno.Command("tar", {
      args: ["-C", staging, "-cf", "-", "."],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const ctr = new Deno.Command("ctr", {
      args: [
        "-a",
        node.containerdSocket,
        "-n",
        "k8s.io",
        "images",
        "import",
        "--snapshotter",
        "overlayfs",
        "-",
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    await tar.stdout.pipeTo(ctr.stdin);
    const [t, c] = await Promise.all([tar.output(), ctr.output()]);
    const dec = new TextDecoder();
    await Deno.writeTextFile(
      logFile,
      `$ tar | ctr images import - (${image.ref}, ${layersSent} layers)\n${dec.decode(c.stdout)}${
        dec.decode(c.stderr)
      }[exit ${c.code}]\n`,
      { append: true },
    );
    if (t.code !== 0) throw new StepError(step, `tar exited ${t.code}: ${dec.decode(t.stderr)}`);
    if (c.code !== 0) {
      throw new StepError(step, `ctr import exited ${c.code}: ${dec.decode(c.stderr).trim()}`, {
        logFile,
      });
    }
  } finally {
    await Deno.remove(staging, { recursive: true });
  }
  if (!(await listImages(node)).includes(image.ref)) {
    throw new StepError(step, `${image.ref} missing after import`, { logFile });
  }
  return { layersSent };
}

/** Imports `image` unless the node already holds it (by config digest); returns what it did. */
export async function ensureImage(
  node: ImportTarget & { dir: string },
  image: BuiltImage,
  stagingRoot: string,
  logFile: string,
): Promise<{ imported: boolean; layersSent: number }> {
  const marker = `${node.dir}/images/${image.ref.replaceAll(/[^A-Za-z0-9._-]/g, "_")}`;
  if (await exists(marker)) {
    const recorded = (await Deno.readTextFile(marker)).trim();
    if (recorded === image.configDigest && (await listImages(node)).includes(image.ref)) {
      return { imported: false, layersSent: 0 };
    }
  }
  const { layersSent } = await importDelta(node, image, stagingRoot, logFile);
  await Deno.mkdir(`${node.dir}/images`, { recursive: true });
  await Deno.writeTextFile(marker, image.configDigest + "\n");
  return { imported: true, layersSent };
}
