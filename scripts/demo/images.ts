/**
 * The demo's extra container images, built locally (no registry is reachable) and imported into
 * every node of the running local cluster:
 * - `registry.k8s.io/kube-scheduler:v1.36.3`: one layer with the locally built static
 *   kube-scheduler at /usr/local/bin/kube-scheduler (the scheduler Deployment's second container);
 * - `localhost/neonvm-ts/pgload:dev`: the Postgres example guest's Debian root file system (it has
 *   psql and pgbench), used by the load pod.
 * Layers are cached under /var/cache/neonvm-ts/demo/; a node that already holds a layer gets only
 * the image documents. Must not build the runtime image or touch anything but node containerds.
 *
 * Usage: deno run -A scripts/demo/images.ts [scheduler|kernel|pgload|all]
 * @module
 */
import { binDirFor, DEFAULT_CACHE_DIR, nodeLayout } from "../cluster/layout.ts";
import { exists, run, sha256Hex } from "../cluster/exec.ts";
import type { BuiltImage } from "../images/build.ts";
import { DETERMINISTIC_TAR, imageConfigJson, type Layer } from "../images/docker_archive.ts";
import { ensureImage } from "../images/import.ts";
import { cachedSha } from "../images/rootfs.ts";
import type { Logger } from "../../src/lib/log.ts";
import { GUEST_KERNEL_IMAGE } from "./manifests.ts";

/** Reference of the upstream kube-scheduler image the scheduler Deployment names. */
export const KUBE_SCHEDULER_IMAGE = "registry.k8s.io/kube-scheduler:v1.36.3";
/** Reference of the load-generator image (psql + pgbench). */
export const PGLOAD_IMAGE = "localhost/neonvm-ts/pgload:dev";
/** Where scripts/guest/build_test_guest.ts puts the guest kernel and its initramfs. */
export const GUEST_KERNEL_DIR = `${DEFAULT_CACHE_DIR}/guest`;
/** Where vm-examples/pg16 keeps its prepared root file system. */
export const PG16_ROOTFS = `${DEFAULT_CACHE_DIR}/vm-examples/pg16/rootfs`;

/** Where to read and write. */
export interface DemoImageContext {
  /** Cache directory (/var/cache/neonvm-ts). */
  cacheDir: string;
  /** Log file for tar/ctr output. */
  logFile: string;
  /** Progress logger. */
  log: Logger;
}

async function layerFromDir(
  ctx: DemoImageContext,
  dir: string,
  out: string,
  comment: string,
  step: string,
): Promise<Layer> {
  if (!(await exists(out))) {
    await run(["tar", ...DETERMINISTIC_TAR, "-C", dir, "-cf", `${out}.tmp`, "."], {
      step,
      logFile: ctx.logFile,
      timeoutMs: 10 * 60_000,
    });
    await Deno.rename(`${out}.tmp`, out);
  }
  return { path: out, sha256: await cachedSha(out), comment };
}

async function image(
  ref: string,
  layers: Layer[],
  settings: Parameters<typeof imageConfigJson>[1],
) {
  const configJson = imageConfigJson(layers, settings);
  const built: BuiltImage = {
    ref,
    archive: "",
    configDigest: `sha256:${await sha256Hex(configJson)}`,
    configJson,
    layers,
  };
  return built;
}

/** Builds (or reuses) the kube-scheduler image from the locally built binary. */
export async function buildKubeSchedulerImage(ctx: DemoImageContext): Promise<BuiltImage> {
  const bin = `${binDirFor(ctx.cacheDir)}/kube-scheduler`;
  const st = await Deno.stat(bin);
  const key = (await sha256Hex(`${bin} ${st.size} ${st.mtime?.getTime()}`)).slice(0, 16);
  const dir = `${ctx.cacheDir}/demo`;
  await Deno.mkdir(dir, { recursive: true });
  const out = `${dir}/layer-kube-scheduler-${key}.tar`;
  if (!(await exists(out))) {
    const staging = `${dir}/kube-scheduler.staging`;
    await Deno.remove(staging, { recursive: true }).catch(() => {});
    await Deno.mkdir(`${staging}/usr/local/bin`, { recursive: true });
    await Deno.copyFile(bin, `${staging}/usr/local/bin/kube-scheduler`);
    await Deno.chmod(`${staging}/usr/local/bin/kube-scheduler`, 0o755);
    for (const d of ["usr", "usr/local", "usr/local/bin"]) {
      await Deno.chmod(`${staging}/${d}`, 0o755);
    }
    await layerFromDir(ctx, staging, out, "kube-scheduler v1.36.3", "demo.image.kube-scheduler");
    await Deno.remove(staging, { recursive: true });
  }
  const layer = { path: out, sha256: await cachedSha(out), comment: "kube-scheduler v1.36.3" };
  return image(KUBE_SCHEDULER_IMAGE, [layer], {
    env: ["PATH=/usr/local/bin:/usr/bin:/bin"],
    entrypoint: ["/usr/local/bin/kube-scheduler"],
  });
}

/** Builds (or reuses) the load image from the Postgres guest's root file system. */
export async function buildPgloadImage(
  ctx: DemoImageContext,
  rootfs = PG16_ROOTFS,
): Promise<BuiltImage> {
  const stamp = `${rootfs}/.neonvm-example-ready`;
  if (!(await exists(stamp))) {
    throw new Error(
      `${rootfs} is not ready: build the Postgres guest first (deno task vm-builder example pg16)`,
    );
  }
  const st = await Deno.stat(stamp);
  const key = (await sha256Hex(`${rootfs} ${st.mtime?.getTime()}`)).slice(0, 16);
  const dir = `${ctx.cacheDir}/demo`;
  await Deno.mkdir(dir, { recursive: true });
  const out = `${dir}/layer-pgload-${key}.tar`;
  const layer = await layerFromDir(
    ctx,
    rootfs,
    out,
    "Debian bookworm with PostgreSQL 15 (vm-examples/pg16 rootfs)",
    "demo.image.pgload",
  );
  return image(PGLOAD_IMAGE, [layer], {
    env: [
      "PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      "LANG=C.UTF-8",
    ],
    cmd: ["sleep", "infinity"],
  });
}

/**
 * Builds (or reuses) a guest kernel image for `spec.guest.kernelImage`: `/vmlinuz` and
 * `/initrd.img` (the runner boots the kernel with the initramfs beside it) plus static busybox as
 * `/bin/cp` and `/bin/sh` for the init containers that copy them. The demo no longer needs it: the
 * runtime image now carries the same kernel and initramfs at /vm/kernel (byte for byte), which a
 * VM without `kernelImage` boots. Kept for callers that still name it (stack.ts imports it).
 */
export async function buildGuestKernelImage(
  ctx: DemoImageContext,
  dir = GUEST_KERNEL_DIR,
): Promise<BuiltImage> {
  for (const f of ["vmlinuz", "initrd.img"]) {
    if (!(await exists(`${dir}/${f}`))) {
      throw new Error(
        `${dir}/${f} missing: build it with deno run -A scripts/guest/build_test_guest.ts`,
      );
    }
  }
  const [k, i] = await Promise.all([Deno.stat(`${dir}/vmlinuz`), Deno.stat(`${dir}/initrd.img`)]);
  const key = (await sha256Hex(
    `${dir} ${k.size} ${k.mtime?.getTime()} ${i.size} ${i.mtime?.getTime()}`,
  )).slice(0, 16);
  const cache = `${ctx.cacheDir}/demo`;
  await Deno.mkdir(cache, { recursive: true });
  const out = `${cache}/layer-demo-kernel-${key}.tar`;
  const comment = "guest kernel, initramfs, busybox";
  if (!(await exists(out))) {
    const staging = `${cache}/demo-kernel.staging`;
    await Deno.remove(staging, { recursive: true }).catch(() => {});
    await Deno.mkdir(`${staging}/bin`, { recursive: true });
    await Deno.copyFile(`${dir}/vmlinuz`, `${staging}/vmlinuz`);
    await Deno.copyFile(`${dir}/initrd.img`, `${staging}/initrd.img`);
    await Deno.copyFile("/bin/busybox", `${staging}/bin/busybox`);
    await Deno.chmod(`${staging}/bin/busybox`, 0o755);
    for (const f of ["vmlinuz", "initrd.img"]) await Deno.chmod(`${staging}/${f}`, 0o644);
    for (const l of ["cp", "sh"]) await Deno.symlink("busybox", `${staging}/bin/${l}`);
    await Deno.chmod(`${staging}/bin`, 0o755);
    await layerFromDir(ctx, staging, out, comment, "demo.image.kernel");
    await Deno.remove(staging, { recursive: true });
  }
  return image(GUEST_KERNEL_IMAGE, [{ path: out, sha256: await cachedSha(out), comment }], {
    env: ["PATH=/bin"],
  });
}

/** Imports `image` into every node of the cluster in `clusterDir` that lacks this exact image. */
export async function importIntoNodes(
  ctx: DemoImageContext,
  image: BuiltImage,
  clusterDir: string,
  nodeCount: number,
): Promise<void> {
  for (let i = 0; i < nodeCount; i++) {
    const node = nodeLayout(clusterDir, i);
    const t0 = performance.now();
    const r = await ensureImage(node, image, `${ctx.cacheDir}/demo`, ctx.logFile);
    ctx.log.info("image on node", {
      ref: image.ref,
      node: node.name,
      imported: r.imported,
      layersSent: r.layersSent,
      seconds: Math.round((performance.now() - t0) / 100) / 10,
    });
  }
}

if (import.meta.main) {
  const { createLogger } = await import("../../src/lib/log.ts");
  const { ClusterStateSchema, controlPlanePaths, DEFAULT_CLUSTER_DIR } = await import(
    "../cluster/layout.ts"
  );
  const log = createLogger("demo.images");
  const which = Deno.args[0] ?? "all";
  const clusterDir = Deno.env.get("NEONVM_CLUSTER_DIR") ?? DEFAULT_CLUSTER_DIR;
  const state = ClusterStateSchema.parse(
    JSON.parse(await Deno.readTextFile(controlPlanePaths(clusterDir).stateFile)),
  );
  const ctx = {
    cacheDir: Deno.env.get("NEONVM_CACHE") ?? DEFAULT_CACHE_DIR,
    logFile: `${controlPlanePaths(clusterDir).logs}/demo-images.log`,
    log,
  };
  if (which === "scheduler" || which === "all") {
    await importIntoNodes(ctx, await buildKubeSchedulerImage(ctx), clusterDir, state.nodes.length);
  }
  if (which === "kernel" || which === "all") {
    await importIntoNodes(ctx, await buildGuestKernelImage(ctx), clusterDir, state.nodes.length);
  }
  if (which === "pgload" || which === "all") {
    await importIntoNodes(ctx, await buildPgloadImage(ctx), clusterDir, state.nodes.length);
  }
}
