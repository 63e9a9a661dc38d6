/**
 * Imports image archives (docker-archive or OCI archive tars) into node containerds, in the
 * `k8s.io` namespace the kubelet uses, unpacked for overlayfs. Remembers per node which image ID
 * it imported under which name so an unchanged image is not imported twice. Must not touch a
 * containerd other than the given node's socket.
 * @module
 */
import { exists, run } from "../cluster/exec.ts";

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

/** Imports `archive` as `ref` unless the node already holds that exact image (by config digest). */
export async function ensureImage(
  node: ImportTarget & { dir: string },
  image: { ref: string; archive: string; configDigest: string },
  logFile: string,
): Promise<boolean> {
  const marker = `${node.dir}/images/${image.ref.replaceAll(/[^A-Za-z0-9._-]/g, "_")}`;
  if (await exists(marker)) {
    const recorded = (await Deno.readTextFile(marker)).trim();
    if (recorded === image.configDigest && (await listImages(node)).includes(image.ref)) {
      return false;
    }
  }
  await importArchive(node, image.archive, logFile);
  await Deno.mkdir(`${node.dir}/images`, { recursive: true });
  await Deno.writeTextFile(marker, image.configDigest + "\n");
  return true;
}
