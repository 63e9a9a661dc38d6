/**
 * Packing a root file system directory into a single-layer OCI image layout (used by the examples
 * and tests to produce builder inputs without a registry or Docker). GNU tar with sorted names,
 * numeric owners and a fixed mtime keeps the layer reproducible. Does not modify the directory.
 * @module
 */
import { createHash } from "node:crypto";
import { canonicalJson, MEDIA } from "../core/oci.ts";
import { run } from "./exec.ts";

/** What the image runs (OCI config fields). */
export interface LayoutConfig {
  readonly env?: readonly string[];
  readonly entrypoint?: readonly string[];
  readonly cmd?: readonly string[];
  readonly user?: string;
  readonly workingDir?: string;
}

async function sha256File(path: string): Promise<{ hex: string; size: number }> {
  const h = createHash("sha256");
  let size = 0;
  using f = await Deno.open(path);
  for await (const chunk of f.readable) {
    h.update(chunk);
    size += chunk.length;
  }
  return { hex: h.digest("hex"), size };
}

/** Writes `layoutDir` (must not exist) holding `rootfs` as one layer, tagged `tag`. */
export async function writeLayoutFromDir(
  rootfs: string,
  layoutDir: string,
  config: LayoutConfig,
  tag = "latest",
  epochSec = 0,
): Promise<{ manifestDigest: string }> {
  await Deno.mkdir(`${layoutDir}/blobs/sha256`, { recursive: true });
  const tarPath = `${layoutDir}/layer.tar`;
  await run("tar", [
    "--sort=name",
    "--numeric-owner",
    `--mtime=@${epochSec}`,
    "--clamp-mtime",
    "--format=posix",
    "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
    "--xattrs",
    "-C",
    rootfs,
    "-cf",
    tarPath,
    ".",
  ]);
  const diff = await sha256File(tarPath);
  await run("gzip", ["-n", "-1", tarPath]);
  const layer = await sha256File(`${tarPath}.gz`);
  await Deno.rename(`${tarPath}.gz`, `${layoutDir}/blobs/sha256/${layer.hex}`);
  const enc = new TextEncoder();
  const put = async (text: string) => {
    const bytes = enc.encode(text);
    const hex = createHash("sha256").update(bytes).digest("hex");
    await Deno.writeFile(`${layoutDir}/blobs/sha256/${hex}`, bytes);
    return { digest: `sha256:${hex}`, size: bytes.length };
  };
  const cfg = await put(canonicalJson({
    architecture: "amd64",
    os: "linux",
    config: {
      Env: config.env ?? ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
      ...(config.entrypoint ? { Entrypoint: config.entrypoint } : {}),
      ...(config.cmd ? { Cmd: config.cmd } : {}),
      ...(config.user ? { User: config.user } : {}),
      ...(config.workingDir ? { WorkingDir: config.workingDir } : {}),
    },
    rootfs: { type: "layers", diff_ids: [`sha256:${diff.hex}`] },
  }));
  const manifest = await put(canonicalJson({
    schemaVersion: 2,
    mediaType: MEDIA.manifest,
    config: { mediaType: MEDIA.config, ...cfg },
    layers: [{ mediaType: MEDIA.layerGzip, digest: `sha256:${layer.hex}`, size: layer.size }],
  }));
  await Deno.writeTextFile(
    `${layoutDir}/index.json`,
    canonicalJson({
      schemaVersion: 2,
      mediaType: MEDIA.index,
      manifests: [{
        mediaType: MEDIA.manifest,
        ...manifest,
        annotations: { "org.opencontainers.image.ref.name": tag },
      }],
    }),
  );
  await Deno.writeTextFile(
    `${layoutDir}/oci-layout`,
    JSON.stringify({ imageLayoutVersion: "1.0.0" }),
  );
  return { manifestDigest: manifest.digest };
}
