/**
 * Shipping our guest programs (neonvmd, vm-monitor) as source plus a pre-populated Deno cache so
 * `deno run --cached-only` works offline in the guest. Does not compile or bundle anything.
 * @module
 */
import { run } from "./exec.ts";
import { resolveInRoot } from "./rootfs.ts";

/** Guest programs and their entrypoints, relative to the project root. */
export const DENO_ENTRYPOINTS = {
  neonvmd: "src/daemon/main.ts",
  vmMonitor: "src/monitor/main.ts",
} as const;

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Which guest programs exist in the project tree. */
export async function availableApps(
  projectDir: string,
): Promise<{ neonvmd: boolean; vmMonitor: boolean }> {
  return {
    neonvmd: await exists(`${projectDir}/${DENO_ENTRYPOINTS.neonvmd}`),
    vmMonitor: await exists(`${projectDir}/${DENO_ENTRYPOINTS.vmMonitor}`),
  };
}

/** Copies the project source into /neonvm/app and fills /neonvm/deno-dir for the entrypoints. */
export async function shipDenoApp(
  root: string,
  projectDir: string,
  apps: { neonvmd: boolean; vmMonitor: boolean },
): Promise<void> {
  const app = await resolveInRoot(root, "/neonvm/app");
  const denoDir = await resolveInRoot(root, "/neonvm/deno-dir");
  await Deno.mkdir(app, { recursive: true });
  await Deno.mkdir(denoDir, { recursive: true });
  for (const f of ["deno.json", "deno.lock"]) {
    if (await exists(`${projectDir}/${f}`)) {
      await Deno.copyFile(`${projectDir}/${f}`, `${app}/${f}`);
    }
  }
  await run("cp", ["-a", `${projectDir}/src`, `${app}/src`]);
  // Tests are not needed in the guest.
  await run("find", [app + "/src", "-name", "*_test.ts", "-delete"]);
  const entrypoints = [
    ...(apps.neonvmd ? [DENO_ENTRYPOINTS.neonvmd] : []),
    ...(apps.vmMonitor ? [DENO_ENTRYPOINTS.vmMonitor] : []),
  ];
  if (entrypoints.length === 0) return;
  await run(Deno.execPath(), ["install", "--quiet", "--entrypoint", ...entrypoints], {
    cwd: app,
    env: { ...Deno.env.toObject(), DENO_DIR: denoDir, DENO_NO_UPDATE_CHECK: "1" },
  });
  // Optional analysis caches (SQLite) and the transpile cache (keyed by the build's absolute
  // paths) differ from build to build; deno recreates them in the guest.
  await run("find", [denoDir, "-maxdepth", "1", "-type", "f", "-name", "*_v*", "-delete"]);
  await Deno.remove(`${denoDir}/gen`, { recursive: true }).catch(() => undefined);
}
