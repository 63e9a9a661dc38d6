/**
 * OCI image formats: zod schemas for the parts of an input image the builder reads (index,
 * manifest, config), and builders for the output image's JSON documents. Pure: no I/O.
 * @module
 */
import { z } from "zod";
import { ParseError } from "../../src/lib/errors.ts";

/** Media types used by the output image. */
export const MEDIA = {
  index: "application/vnd.oci.image.index.v1+json",
  manifest: "application/vnd.oci.image.manifest.v1+json",
  config: "application/vnd.oci.image.config.v1+json",
  layerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
} as const;

/** A content descriptor. */
export const DescriptorSchema = z.looseObject({
  mediaType: z.string(),
  digest: z.string().regex(/^sha256:[0-9a-f]{64}$/),
  size: z.number().int().nonnegative(),
  annotations: z.record(z.string(), z.string()).optional(),
  platform: z.looseObject({ architecture: z.string(), os: z.string() }).optional(),
});
/** A content descriptor. */
export type Descriptor = z.infer<typeof DescriptorSchema>;

/** An image index (`index.json`). */
export const IndexSchema = z.looseObject({
  schemaVersion: z.literal(2),
  manifests: z.array(DescriptorSchema),
});

/** An image manifest. */
export const ManifestSchema = z.looseObject({
  schemaVersion: z.literal(2),
  config: DescriptorSchema,
  layers: z.array(DescriptorSchema),
});

/** The runtime part of an image config that the guest needs. */
export const ImageConfigSchema = z.looseObject({
  architecture: z.string().optional(),
  os: z.string().optional(),
  config: z.looseObject({
    Env: z.array(z.string()).nullish(),
    Entrypoint: z.array(z.string()).nullish(),
    Cmd: z.array(z.string()).nullish(),
    User: z.string().nullish(),
    WorkingDir: z.string().nullish(),
  }).nullish(),
});

/** What the guest runs, from the image config. */
export interface ImageRuntime {
  readonly env: readonly string[];
  readonly entrypoint: readonly string[];
  readonly cmd: readonly string[];
  readonly user: string;
  readonly workingDir: string;
}

/** Parses an image config blob into what the guest runs. */
export function parseImageRuntime(doc: unknown, source: string): ImageRuntime {
  const r = ImageConfigSchema.safeParse(doc);
  if (!r.success) {
    throw new ParseError(`Invalid image config in ${source}: ${r.error.message}`);
  }
  const c = r.data.config ?? {};
  return {
    env: c.Env ?? [],
    entrypoint: c.Entrypoint ?? [],
    cmd: c.Cmd ?? [],
    user: c.User ?? "",
    workingDir: c.WorkingDir ?? "",
  };
}

/** Picks the linux/amd64 manifest (or the only one) from an index; throws naming the choices. */
export function pickManifest(index: z.infer<typeof IndexSchema>, source: string): Descriptor {
  const manifests = index.manifests.filter((m) =>
    m.mediaType === MEDIA.manifest || m.mediaType.endsWith("manifest.v2+json")
  );
  if (manifests.length === 1) return manifests[0]!;
  const amd = manifests.filter((m) =>
    m.platform?.architecture === "amd64" && m.platform.os === "linux"
  );
  if (amd.length >= 1) return amd[0]!;
  throw new ParseError(
    `Cannot choose an image in ${source}: ${manifests.length} manifests and none is linux/amd64`,
  );
}

/** Canonical JSON (sorted keys, no spaces) so digests are reproducible. */
export function canonicalJson(value: unknown): string {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (v !== null && typeof v === "object") {
      return Object.fromEntries(
        Object.keys(v).sort().map((k) => [k, sort((v as Record<string, unknown>)[k])]),
      );
    }
    return v;
  };
  return JSON.stringify(sort(value));
}

/** Inputs for the output image documents. */
export interface OutputImageInput {
  readonly layer: { readonly digest: string; readonly size: number; readonly diffId: string };
  /** Full reference, e.g. `docker.io/neonvm-ts/vm-pg16:dev`. */
  readonly ref: string;
  /** Seconds since the epoch for `created`. */
  readonly createdSec: number;
  readonly labels: Readonly<Record<string, string>>;
}

/** Builds the config, manifest and index documents of the output image. */
export function buildOutputImage(input: OutputImageInput): {
  config: string;
  manifest: (configDigest: string, configSize: number) => string;
  index: (manifestDigest: string, manifestSize: number) => string;
} {
  const created = new Date(input.createdSec * 1000).toISOString().replace(".000Z", "Z");
  const config = canonicalJson({
    architecture: "amd64",
    os: "linux",
    created,
    config: {
      Env: ["PATH=/bin"],
      Cmd: ["/bin/sh"],
      Labels: input.labels,
    },
    rootfs: { type: "layers", diff_ids: [input.layer.diffId] },
    history: [{ created, created_by: "neonvm-ts vm-builder" }],
  });
  const tag = input.ref.includes(":") ? input.ref.slice(input.ref.lastIndexOf(":") + 1) : "latest";
  return {
    config,
    manifest: (configDigest, configSize) =>
      canonicalJson({
        schemaVersion: 2,
        mediaType: MEDIA.manifest,
        config: { mediaType: MEDIA.config, digest: configDigest, size: configSize },
        layers: [{
          mediaType: MEDIA.layerGzip,
          digest: input.layer.digest,
          size: input.layer.size,
        }],
      }),
    index: (manifestDigest, manifestSize) =>
      canonicalJson({
        schemaVersion: 2,
        mediaType: MEDIA.index,
        manifests: [{
          mediaType: MEDIA.manifest,
          digest: manifestDigest,
          size: manifestSize,
          platform: { architecture: "amd64", os: "linux" },
          annotations: {
            "io.containerd.image.name": input.ref,
            "org.opencontainers.image.ref.name": tag,
          },
        }],
      }),
  };
}

/** Normalises an image name to a full reference (`vm-pg16` -> `docker.io/library/vm-pg16:latest`). */
export function normaliseRef(name: string): string {
  let ref = name;
  const lastSlash = ref.lastIndexOf("/");
  if (!ref.slice(lastSlash + 1).includes(":") && !ref.includes("@")) ref += ":latest";
  const first = ref.split("/")[0]!;
  const hasRegistry = ref.includes("/") &&
    (first.includes(".") || first.includes(":") || first === "localhost");
  if (!hasRegistry) ref = (ref.includes("/") ? "docker.io/" : "docker.io/library/") + ref;
  return ref;
}
