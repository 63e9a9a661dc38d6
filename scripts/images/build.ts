/**
 * Builds the two local images as docker-archive tars under the cache: the pause image (static
 * catatonit) and `localhost/neonvm-ts/runtime:dev` (Debian rootfs, Deno, guest kernel, npm
 * dependencies, project source). Layers are cached by content; only the source layer is rebuilt
 * when the source changes. Must not write into the repository.
 * @module
 */
import { exists, run, sha256Hex } from "../cluster/exec.ts";
import { PAUSE_IMAGE, RUNTIME_IMAGE } from "../cluster/layout.ts";
import type { Logger } from "../../src/lib/log.ts";
import {
  DETERMINISTIC_TAR,
  imageConfigJson,
  type ImageSettings,
  type Layer,
  writeDockerArchive,
} from "./docker_archive.ts";
import { cachedSha, rootfsLayer } from "./rootfs.ts";
import { buildTestGuest } from "../guest/build_test_guest.ts";

/** A built image archive. */
export interface BuiltImage {
  /** Full image reference. */
  ref: string;
  /** Path of the docker-archive tar. */
  archive: string;
  /** Image config digest (`sha256:<hex>`), the image ID. */
  configDigest: string;
  /** The image config JSON exactly as hashed into `configDigest`. */
  configJson: string;
  /** The layer tars in order (cached files), for delta imports. */
  layers: Layer[];
}

/** Where the build reads and writes. */
export interface BuildContext {
  /** Repository root (source of /app). */
  repo: string;
  /** Cache directory (/var/cache/neonvm-ts). */
  cacheDir: string;
  /** Log directory for step logs. */
  logDir: string;
  /** Progress logger. */
  log: Logger;
}

/** Environment of the runtime image. */
export const RUNTIME_ENV = [
  "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  "DENO_DIR=/app/.deno",
  "DENO_NO_UPDATE_CHECK=1",
  "DENO_NO_PROMPT=1",
];

/** Guest kernel path inside the runtime image. */
export const GUEST_KERNEL_PATH = "/vm/kernel/vmlinuz";
/** Where the runtime image carries the initramfs that loads the kernel's virtio modules. */
export const GUEST_INITRD_PATH = "/vm/kernel/initrd.img";

async function tarLayer(
  ctx: BuildContext,
  staging: string,
  out: string,
  comment: string,
  step: string,
): Promise<Layer> {
  await run(["tar", ...DETERMINISTIC_TAR, "-C", staging, "-cf", `${out}.tmp`, "."], {
    step,
    logFile: `${ctx.logDir}/images.log`,
  });
  await Deno.rename(`${out}.tmp`, out);
  return { path: out, sha256: await cachedSha(out), comment };
}

async function freshDir(path: string): Promise<void> {
  await Deno.remove(path, { recursive: true }).catch(() => {});
  await Deno.mkdir(path, { recursive: true });
}

async function finish(
  ctx: BuildContext,
  name: string,
  ref: string,
  layers: Layer[],
  settings: ImageSettings,
): Promise<BuiltImage> {
  const configJson = imageConfigJson(layers, settings);
  const configHex = await sha256Hex(configJson);
  const archive = `${ctx.cacheDir}/images/${name}-${configHex.slice(0, 16)}.tar`;
  const built = { ref, archive, configDigest: `sha256:${configHex}`, configJson, layers };
  if (await exists(archive)) {
    ctx.log.info("image cached", { ref, archive });
    return built;
  }
  await writeDockerArchive(archive, layers, settings, [ref], `images.${name}`);
  // Keep only the newest archive of this image; older ones are dead weight.
  const keep = archive.split("/").pop();
  for await (const e of Deno.readDir(`${ctx.cacheDir}/images`)) {
    if (e.name.startsWith(`${name}-`) && e.name.endsWith(".tar") && e.name !== keep) {
      await Deno.remove(`${ctx.cacheDir}/images/${e.name}`);
    }
  }
  ctx.log.info("image built", { ref, archive, configDigest: built.configDigest });
  return built;
}

/** Builds (or reuses) the pause image: static catatonit in pause mode. */
export async function buildPause(ctx: BuildContext): Promise<BuiltImage> {
  await Deno.mkdir(`${ctx.cacheDir}/images`, { recursive: true });
  const bin = "/usr/bin/catatonit";
  const key = (await sha256Hex(await Deno.readFile(bin))).slice(0, 16);
  const out = `${ctx.cacheDir}/images/layer-pause-${key}.tar`;
  let layer: Layer;
  if (await exists(out)) layer = { path: out, sha256: await cachedSha(out), comment: "catatonit" };
  else {
    const staging = `${ctx.cacheDir}/images/pause.staging`;
    await freshDir(staging);
    await Deno.copyFile(bin, `${staging}/catatonit`);
    await Deno.chmod(`${staging}/catatonit`, 0o755);
    layer = await tarLayer(ctx, staging, out, "catatonit", "images.pause");
    await Deno.remove(staging, { recursive: true });
  }
  return finish(ctx, "pause", PAUSE_IMAGE, [layer], {
    env: ["PATH=/"],
    entrypoint: ["/catatonit", "-P"],
  });
}

async function toolsLayer(ctx: BuildContext): Promise<Layer> {
  const deno = await Deno.realPath(Deno.execPath());
  const kernel = await guestKernel();
  // The Debian cloud kernel cannot mount /dev/vda without its virtio modules: ship the initramfs
  // that loads them beside the kernel, where the runner looks for it by default.
  const { initrdPath } = await buildTestGuest(undefined, { kernel });
  const [ds, ks, is] = await Promise.all([
    Deno.stat(deno),
    Deno.stat(kernel),
    Deno.stat(initrdPath),
  ]);
  const key = (await sha256Hex(
    `${Deno.version.deno} ${ds.size} ${ds.mtime?.getTime()} ${kernel} ${ks.size} ${ks.mtime?.getTime()} ${is.size} ${is.mtime?.getTime()}`,
  )).slice(0, 16);
  const out = `${ctx.cacheDir}/images/layer-tools-${key}.tar`;
  const comment =
    `deno ${Deno.version.deno} at /usr/local/bin/deno; ${kernel} at ${GUEST_KERNEL_PATH}; initramfs at ${GUEST_INITRD_PATH}`;
  if (await exists(out)) return { path: out, sha256: await cachedSha(out), comment };
  const staging = `${ctx.cacheDir}/images/tools.staging`;
  await freshDir(staging);
  await Deno.mkdir(`${staging}/usr/local/bin`, { recursive: true });
  await Deno.mkdir(`${staging}/vm/kernel`, { recursive: true });
  await Deno.copyFile(deno, `${staging}/usr/local/bin/deno`);
  await Deno.chmod(`${staging}/usr/local/bin/deno`, 0o755);
  await Deno.copyFile(kernel, `${staging}${GUEST_KERNEL_PATH}`);
  await Deno.chmod(`${staging}${GUEST_KERNEL_PATH}`, 0o644);
  await Deno.copyFile(initrdPath, `${staging}${GUEST_INITRD_PATH}`);
  await Deno.chmod(`${staging}${GUEST_INITRD_PATH}`, 0o644);
  for (const d of ["usr", "usr/local", "usr/local/bin", "vm", "vm/kernel"]) {
    await Deno.chmod(`${staging}/${d}`, 0o755);
  }
  const layer = await tarLayer(ctx, staging, out, comment, "images.tools");
  await Deno.remove(staging, { recursive: true });
  ctx.log.info("tools layer built", { deno: Deno.version.deno, kernel });
  return layer;
}

/** The host's Debian cloud kernel (newest), used as the default guest kernel. */
export async function guestKernel(): Promise<string> {
  const found: string[] = [];
  for await (const e of Deno.readDir("/boot")) {
    if (/^vmlinuz-.*-cloud-amd64$/.test(e.name)) found.push(`/boot/${e.name}`);
  }
  const last = found.sort().pop();
  if (!last) throw new Error("no /boot/vmlinuz-*-cloud-amd64 (install linux-image-cloud-amd64)");
  return last;
}

async function depsLayer(ctx: BuildContext): Promise<Layer> {
  const denoJson = await Deno.readTextFile(`${ctx.repo}/deno.json`);
  const lock = await Deno.readTextFile(`${ctx.repo}/deno.lock`);
  const parsed = JSON.parse(denoJson) as { imports?: unknown; nodeModulesDir?: unknown };
  const key = (await sha256Hex(
    JSON.stringify([Deno.version.deno, parsed.imports, parsed.nodeModulesDir, lock]),
  )).slice(0, 16);
  const out = `${ctx.cacheDir}/images/layer-deps-${key}.tar`;
  const comment = "npm dependencies: /app/node_modules and DENO_DIR /app/.deno";
  if (await exists(out)) return { path: out, sha256: await cachedSha(out), comment };
  const staging = `${ctx.cacheDir}/images/deps.staging`;
  await freshDir(`${staging}/app`);
  await Deno.writeTextFile(`${staging}/app/deno.json`, denoJson);
  await Deno.writeTextFile(`${staging}/app/deno.lock`, lock);
  await run([Deno.execPath(), "install", "--frozen"], {
    step: "images.deps",
    cwd: `${staging}/app`,
    env: { DENO_DIR: `${staging}/app/.deno`, DENO_NO_UPDATE_CHECK: "1" },
    logFile: `${ctx.logDir}/images.log`,
    timeoutMs: 10 * 60_000,
  });
  // deno.json and deno.lock belong to the source layer.
  await Deno.remove(`${staging}/app/deno.json`);
  await Deno.remove(`${staging}/app/deno.lock`);
  const layer = await tarLayer(ctx, staging, out, comment, "images.deps");
  await Deno.remove(staging, { recursive: true });
  ctx.log.info("deps layer built", { key });
  return layer;
}

async function appLayer(ctx: BuildContext): Promise<Layer> {
  const staging = `${ctx.cacheDir}/images/app.staging`;
  await freshDir(`${staging}/app`);
  await run(["cp", "-a", `${ctx.repo}/src`, `${staging}/app/src`], { step: "images.app" });
  await Deno.copyFile(`${ctx.repo}/deno.json`, `${staging}/app/deno.json`);
  await Deno.copyFile(`${ctx.repo}/deno.lock`, `${staging}/app/deno.lock`);
  await run(["chmod", "-R", "u+rwX,go+rX,go-w", `${staging}/app`], { step: "images.app" });
  const tmp = `${ctx.cacheDir}/images/layer-app.building.tar`;
  await run(["tar", ...DETERMINISTIC_TAR, "-C", staging, "-cf", tmp, "."], { step: "images.app" });
  await Deno.remove(staging, { recursive: true });
  const sha = await sha256Hex(await Deno.readFile(tmp));
  const out = `${ctx.cacheDir}/images/layer-app-${sha.slice(0, 16)}.tar`;
  if (await exists(out)) await Deno.remove(tmp);
  else {
    await Deno.rename(tmp, out);
    for await (const e of Deno.readDir(`${ctx.cacheDir}/images`)) {
      if (
        /^layer-app-.*\.tar(\.sha256)?$/.test(e.name) && !e.name.startsWith(out.split("/").pop()!)
      ) {
        await Deno.remove(`${ctx.cacheDir}/images/${e.name}`);
      }
    }
  }
  return { path: out, sha256: sha, comment: "project source: /app/src, deno.json, deno.lock" };
}

/** Builds (or reuses) `localhost/neonvm-ts/runtime:dev`. */
export async function buildRuntime(ctx: BuildContext): Promise<BuiltImage> {
  await Deno.mkdir(`${ctx.cacheDir}/images`, { recursive: true });
  const rootfs = await rootfsLayer(ctx.cacheDir, ctx.logDir, ctx.log);
  const tools = await toolsLayer(ctx);
  const deps = await depsLayer(ctx);
  const app = await appLayer(ctx);
  return finish(ctx, "runtime", RUNTIME_IMAGE, [rootfs, tools, deps, app], {
    env: RUNTIME_ENV,
    workingDir: "/app",
    cmd: ["/usr/local/bin/deno", "--version"],
    labels: { "org.opencontainers.image.title": "neonvm-ts runtime" },
  });
}
