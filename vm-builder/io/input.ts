/**
 * Reading the input image: detects its form (OCI layout directory, OCI archive, `docker save`
 * tarball, registry reference), normalises it to an OCI layout with skopeo, reads its config and
 * unpacks its layers (whiteouts, ownership, devices) with umoci. Does not modify the input.
 * @module
 */
import { ConfigError } from "../../src/lib/errors.ts";
import {
  type ImageRuntime,
  IndexSchema,
  ManifestSchema,
  parseImageRuntime,
  pickManifest,
} from "../core/oci.ts";
import { run } from "./exec.ts";

/** How the input was given. */
export type InputKind = "oci-layout" | "oci-archive" | "docker-archive" | "registry";

/** The input image does not exist or cannot be read. */
export class InputImageError extends Error {
  /** Creates the error; the message names the input. */
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "InputImageError";
  }
}

async function statOrUndefined(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.stat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

/** Works out the skopeo source reference for `src`. */
export async function detectInput(src: string): Promise<{ kind: InputKind; skopeoRef: string }> {
  // `<dir>:<tag>` for a layout with several tags.
  const colon = src.lastIndexOf(":");
  const dirPart = colon > 0 ? src.slice(0, colon) : src;
  const st = await statOrUndefined(src);
  const stDir = st === undefined && colon > 0 ? await statOrUndefined(dirPart) : undefined;
  if (st?.isDirectory || stDir?.isDirectory) {
    const dir = st ? src : dirPart;
    if ((await statOrUndefined(`${dir}/index.json`)) === undefined) {
      throw new InputImageError(
        `Input image "${src}" is a directory but not an OCI layout (no index.json)`,
      );
    }
    return { kind: "oci-layout", skopeoRef: `oci:${src}` };
  }
  if (st?.isFile) {
    let listing: string;
    try {
      listing = await run("tar", ["-tf", src]);
    } catch (err) {
      throw new InputImageError(`Input image "${src}" is not a tar archive`, { cause: err });
    }
    const names = new Set(listing.split("\n").map((n) => n.replace(/^\.\//, "")));
    if (names.has("manifest.json")) {
      return { kind: "docker-archive", skopeoRef: `docker-archive:${src}` };
    }
    if (names.has("index.json")) return { kind: "oci-archive", skopeoRef: `oci-archive:${src}` };
    throw new InputImageError(
      `Input image "${src}" is a tar archive without index.json or manifest.json (not an OCI or docker save archive)`,
    );
  }
  if (
    st !== undefined || src.startsWith("/") || src.startsWith(".") ||
    /\.(tar|tgz|tar\.gz)$/.test(src)
  ) {
    throw new InputImageError(`Input image "${src}" does not exist`);
  }
  if (!/^[a-z0-9]+([._/:@-][A-Za-z0-9_.-]+)*$/.test(src)) {
    throw new InputImageError(
      `Input image "${src}" is neither an existing path nor an image reference`,
    );
  }
  return { kind: "registry", skopeoRef: `docker://${src}` };
}

/** Copies the input into an OCI layout at `layoutDir` with tag `src`. */
export async function fetchToLayout(src: string, layoutDir: string): Promise<InputKind> {
  const { kind, skopeoRef } = await detectInput(src);
  try {
    await run("skopeo", [
      "copy",
      "--quiet",
      "--override-os",
      "linux",
      "--override-arch",
      "amd64",
      skopeoRef,
      `oci:${layoutDir}:src`,
    ]);
  } catch (err) {
    throw new InputImageError(
      kind === "registry"
        ? `Input image "${src}" cannot be pulled (no such image, or the registry is unreachable)`
        : `Input image "${src}" cannot be read as ${kind}`,
      { cause: err },
    );
  }
  return kind;
}

/** Reads the image config of the (single) image in an OCI layout. */
export async function readLayoutRuntime(
  layoutDir: string,
): Promise<{ runtime: ImageRuntime; configDigest: string }> {
  const blob = (digest: string) => `${layoutDir}/blobs/${digest.replace(":", "/")}`;
  const readJson = async (path: string): Promise<unknown> =>
    JSON.parse(await Deno.readTextFile(path));
  const index = IndexSchema.parse(await readJson(`${layoutDir}/index.json`));
  const desc = pickManifest(index, layoutDir);
  const manifest = ManifestSchema.parse(await readJson(blob(desc.digest)));
  const runtime = parseImageRuntime(await readJson(blob(manifest.config.digest)), layoutDir);
  return { runtime, configDigest: manifest.config.digest };
}

/** Unpacks the layout's image into `rootfs` (must not exist). */
export async function unpackLayout(layoutDir: string, rootfs: string): Promise<void> {
  if (Deno.uid() !== 0) {
    throw new ConfigError("vm-builder must run as root to unpack image layers with their owners");
  }
  await run("umoci", ["raw", "unpack", "--image", `${layoutDir}:src`, rootfs]);
}
