/**
 * The Debian bookworm root filesystem under the runtime image: `debootstrap --variant=minbase`
 * from the host's configured apt mirror, trimmed, packed as a layer tar and cached by package list
 * under the cache directory. Must not touch anything outside its own staging directory and cache.
 * @module
 */
import { exists, run, sha256File, sha256Hex, StepError } from "../cluster/exec.ts";
import type { Logger } from "../../src/lib/log.ts";
import { DETERMINISTIC_TAR, type Layer } from "./docker_archive.ts";

/** Debian packages in the runtime image on top of minbase. */
export const RUNTIME_PACKAGES = [
  "qemu-system-x86",
  "qemu-utils",
  "iproute2",
  "iptables",
  "dnsmasq",
  "e2fsprogs",
  "genisoimage",
  "busybox",
  "procps",
  "ca-certificates",
] as const;

/** Debian suite of the runtime image. */
export const SUITE = "bookworm";

/** Parses the first non-security Debian mirror from apt source files (one-line or deb822). */
export function parseMirror(texts: readonly string[]): string | undefined {
  for (const text of texts) {
    for (const raw of text.split("\n")) {
      const line = raw.trim();
      let uris: string[] = [];
      if (line.startsWith("URIs:")) uris = line.slice(5).trim().split(/\s+/);
      else if (/^deb\s/.test(line)) {
        const m = line.match(/^deb\s+(?:\[[^\]]*\]\s+)?(\S+)/);
        if (m?.[1]) uris = [m[1]];
      }
      const hit = uris.find((u) => /^https?:\/\//.test(u) && /debian\/?$/.test(u));
      if (hit) return hit;
    }
  }
  return undefined;
}

async function hostMirror(): Promise<string> {
  const texts: string[] = [];
  for (const f of ["/etc/apt/sources.list"]) {
    if (await exists(f)) texts.push(await Deno.readTextFile(f));
  }
  try {
    for await (const e of Deno.readDir("/etc/apt/sources.list.d")) {
      if (e.isFile && (e.name.endsWith(".list") || e.name.endsWith(".sources"))) {
        texts.push(await Deno.readTextFile(`/etc/apt/sources.list.d/${e.name}`));
      }
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  const mirror = parseMirror(texts);
  if (!mirror) throw new StepError("rootfs", "no Debian mirror found in /etc/apt sources");
  return mirror;
}

/** Returns the cached rootfs layer, running debootstrap first when it is not cached. */
export async function rootfsLayer(cacheDir: string, logDir: string, log: Logger): Promise<Layer> {
  const key = (await sha256Hex(`${SUITE} minbase ${RUNTIME_PACKAGES.join(",")} v1`)).slice(0, 12);
  const out = `${cacheDir}/images/rootfs-${SUITE}-${key}.tar`;
  const comment = `debootstrap --variant=minbase ${SUITE} + ${RUNTIME_PACKAGES.join(" ")}`;
  if (await exists(out)) {
    const sha = await cachedSha(out);
    log.info("rootfs cached", { path: out });
    return { path: out, sha256: sha, comment };
  }
  const logFile = `${logDir}/debootstrap.log`;
  const mirror = await hostMirror();
  const target = `${cacheDir}/images/rootfs-${key}.work`;
  await cleanupTarget(target);
  await Deno.mkdir(target, { recursive: true });
  const started = Date.now();
  log.info("debootstrap started", { mirror, suite: SUITE, logFile });
  try {
    await run([
      "debootstrap",
      "--variant=minbase",
      `--include=${RUNTIME_PACKAGES.join(",")}`,
      SUITE,
      target,
      mirror,
    ], { step: "rootfs.debootstrap", logFile, timeoutMs: 40 * 60_000 });
    // Trim what a container never needs; keeps the layer small.
    for (
      const sub of [
        "var/cache/apt/archives",
        "var/lib/apt/lists",
        "usr/share/doc",
        "usr/share/man",
        "usr/share/info",
        "usr/share/locale",
        "var/log",
      ]
    ) {
      await run(["sh", "-c", `rm -rf "${target}/${sub}"/* 2>/dev/null; true`], {
        step: "rootfs.trim",
      });
    }
    await Deno.remove(`${target}/etc/resolv.conf`).catch(() => {});
    await Deno.writeTextFile(`${target}/etc/hostname`, "neonvm-ts\n");
    await run([
      "tar",
      ...DETERMINISTIC_TAR,
      "--exclude=./dev/*",
      "--exclude=./proc/*",
      "--exclude=./sys/*",
      "-C",
      target,
      "-cf",
      `${out}.tmp`,
      ".",
    ], { step: "rootfs.tar", logFile });
    await Deno.rename(`${out}.tmp`, out);
  } finally {
    await cleanupTarget(target);
  }
  const sha = await cachedSha(out);
  log.info("rootfs built", { path: out, seconds: Math.round((Date.now() - started) / 1000) });
  return { path: out, sha256: sha, comment };
}

/** sha256 of a big cached file, remembered in `<file>.sha256` next to it. */
export async function cachedSha(path: string): Promise<string> {
  const side = `${path}.sha256`;
  const st = await Deno.stat(path);
  const stamp = `${st.size}:${st.mtime?.getTime() ?? 0}`;
  if (await exists(side)) {
    const [hex, recorded] = (await Deno.readTextFile(side)).trim().split(" ");
    if (hex && recorded === stamp) return hex;
  }
  const hex = await sha256File(path, "sha256");
  await Deno.writeTextFile(side, `${hex} ${stamp}\n`);
  return hex;
}

async function cleanupTarget(target: string): Promise<void> {
  if (!(await exists(target))) return;
  // debootstrap mounts proc/sys inside the target; a failed run can leave them behind.
  const mounts = (await Deno.readTextFile("/proc/self/mountinfo")).split("\n")
    .map((l) => l.split(" ")[4] ?? "")
    .filter((m) => m === target || m.startsWith(`${target}/`))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) await run(["umount", "-l", m], { step: "rootfs.cleanup" });
  await Deno.remove(target, { recursive: true });
}
