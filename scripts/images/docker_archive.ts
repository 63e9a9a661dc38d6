/**
 * Docker image archive (`docker save` format v1.2: manifest.json, a config JSON and one tar per
 * layer), the format containerd's `ctr images import` accepts and normalises to a full reference.
 * The JSON builders are pure; `writeDockerArchive` packs prepared layer tars with the `tar` CLI.
 * Must not compress or rewrite layers: a layer's digest is the sha256 of its tar as given.
 * @module
 */
import { run, sha256Hex } from "../cluster/exec.ts";

/** One prepared layer: an uncompressed tar file and its sha256 (the diff_id). */
export interface Layer {
  /** Path of the uncompressed layer tar. */
  path: string;
  /** Hex sha256 of the tar. */
  sha256: string;
  /** What the layer holds, recorded in the image history. */
  comment: string;
}

/** Runtime settings of the image config. */
export interface ImageSettings {
  /** Environment, `KEY=value`. */
  env: string[];
  /** Entrypoint, if any. */
  entrypoint?: string[];
  /** Default command, if any. */
  cmd?: string[];
  /** Working directory. */
  workingDir?: string;
  /** Labels. */
  labels?: Record<string, string>;
}

/** Builds the image config JSON (OCI/Docker image config) for `layers`; deterministic. */
export function imageConfigJson(layers: readonly Layer[], settings: ImageSettings): string {
  const config: Record<string, unknown> = { Env: settings.env };
  if (settings.entrypoint) config.Entrypoint = settings.entrypoint;
  if (settings.cmd) config.Cmd = settings.cmd;
  if (settings.workingDir) config.WorkingDir = settings.workingDir;
  if (settings.labels) config.Labels = settings.labels;
  return JSON.stringify({
    architecture: "amd64",
    os: "linux",
    created: "1970-01-01T00:00:00Z",
    config,
    rootfs: { type: "layers", diff_ids: layers.map((l) => `sha256:${l.sha256}`) },
    history: layers.map((l) => ({ created: "1970-01-01T00:00:00Z", created_by: l.comment })),
  });
}

/** Builds manifest.json for one image whose config file is `<configHex>.json`. */
export function manifestJson(configHex: string, layers: readonly Layer[], tags: string[]): string {
  return JSON.stringify([{
    Config: `${configHex}.json`,
    RepoTags: tags,
    Layers: layers.map((l) => `${l.sha256}/layer.tar`),
  }]);
}

/** Writes a docker-archive tar to `out`; returns the config digest (`sha256:<hex>`). */
export async function writeDockerArchive(
  out: string,
  layers: readonly Layer[],
  settings: ImageSettings,
  tags: string[],
  step: string,
): Promise<string> {
  const config = imageConfigJson(layers, settings);
  const configHex = await sha256Hex(config);
  const staging = `${out}.staging`;
  await Deno.remove(staging, { recursive: true }).catch(() => {});
  await Deno.mkdir(staging, { recursive: true });
  try {
    await Deno.writeTextFile(`${staging}/${configHex}.json`, config);
    await Deno.writeTextFile(`${staging}/manifest.json`, manifestJson(configHex, layers, tags));
    for (const l of layers) {
      await Deno.mkdir(`${staging}/${l.sha256}`, { recursive: true });
      // Hard links: the layer tars are big and live on the same file system as the staging dir.
      await Deno.link(l.path, `${staging}/${l.sha256}/layer.tar`);
    }
    await run(["tar", "-C", staging, "-cf", `${out}.tmp`, "."], { step });
    await Deno.rename(`${out}.tmp`, out);
  } finally {
    await Deno.remove(staging, { recursive: true });
  }
  return `sha256:${configHex}`;
}

/** tar flags that make a layer depend only on file content, names and modes. */
export const DETERMINISTIC_TAR = [
  "--sort=name",
  "--mtime=@0",
  "--owner=0",
  "--group=0",
  "--numeric-owner",
  "--format=gnu",
];
