/**
 * Fetching the metrics exporter shipped in the guest: Debian's prometheus-node-exporter (a Go
 * binary linked against glibc), downloaded with `apt-get download` into the cache and unpacked
 * with dpkg-deb. Does not install anything on the host.
 * @module
 */
import { run } from "./exec.ts";

/** Returns the path of the node exporter binary, downloading the .deb into `cacheDir` once. */
export async function ensureNodeExporter(cacheDir: string): Promise<string> {
  const debDir = `${cacheDir}/debs`;
  await Deno.mkdir(debDir, { recursive: true });
  const findDeb = async () => {
    for await (const e of Deno.readDir(debDir)) {
      if (/^prometheus-node-exporter_.*_amd64\.deb$/.test(e.name)) return `${debDir}/${e.name}`;
    }
    return undefined;
  };
  let deb = await findDeb();
  if (deb === undefined) {
    await run("apt-get", ["download", "-q", "prometheus-node-exporter"], { cwd: debDir });
    deb = await findDeb();
  }
  if (deb === undefined) {
    throw new Error("apt-get download prometheus-node-exporter produced no .deb");
  }
  const name = deb.slice(deb.lastIndexOf("/") + 1).replace(/\.deb$/, "");
  const dir = `${cacheDir}/node-exporter/${name}`;
  const bin = `${dir}/usr/bin/prometheus-node-exporter`;
  try {
    await Deno.stat(bin);
  } catch {
    await Deno.mkdir(dir, { recursive: true });
    await run("dpkg-deb", ["-x", deb, dir]);
  }
  return bin;
}
