/**
 * Importing a built image into the local cluster's containerd instances (`ctr images import`).
 * Finds the sockets from `cluster:status --json` when the cluster scripts exist, else from
 * /run/neonvm-ts/node-*\/containerd.sock. Does not start or configure containerd.
 * @module
 */
import { run } from "./exec.ts";

function socketsIn(value: unknown, out: Set<string>): void {
  if (typeof value === "string") {
    if (value.endsWith("containerd.sock")) out.add(value.replace(/^unix:\/\//, ""));
  } else if (Array.isArray(value)) {
    for (const v of value) socketsIn(v, out);
  } else if (value !== null && typeof value === "object") {
    for (const v of Object.values(value)) socketsIn(v, out);
  }
}

/** Lists the containerd sockets of the local cluster. */
export async function findContainerdSockets(projectDir: string): Promise<string[]> {
  const found = new Set<string>();
  try {
    await Deno.stat(`${projectDir}/scripts/cluster/main.ts`);
    const out = await run(Deno.execPath(), [
      "run",
      "-A",
      "scripts/cluster/main.ts",
      "status",
      "--json",
    ], {
      cwd: projectDir,
    });
    socketsIn(JSON.parse(out), found);
  } catch {
    // No cluster scripts or no status: fall back to the conventional socket paths.
  }
  try {
    for await (const e of Deno.readDir("/run/neonvm-ts")) {
      if (!e.name.startsWith("node-")) continue;
      const sock = `/run/neonvm-ts/${e.name}/containerd.sock`;
      try {
        if ((await Deno.stat(sock)).isSocket) found.add(sock);
      } catch {
        // node dir without a running containerd
      }
    }
  } catch {
    // no /run/neonvm-ts: no local cluster
  }
  return [...found].sort();
}

/** Imports `archive` into the `k8s.io` namespace of each socket. */
export async function importIntoContainerd(
  archive: string,
  sockets: readonly string[],
): Promise<void> {
  for (const sock of sockets) {
    await run("ctr", [
      "-a",
      sock,
      "-n",
      "k8s.io",
      "images",
      "import",
      "--platform",
      "linux/amd64",
      archive,
    ]);
  }
}
