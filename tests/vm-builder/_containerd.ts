/**
 * Test helper: a private containerd (own root, state and socket under a temp dir, CRI disabled)
 * to check that built archives import and that the runner pod's init-container command works
 * against the image. Only for tests.
 * @module
 */
import { findTool } from "../../vm-builder/io/exec.ts";

/** A running private containerd. */
export interface PrivateContainerd extends AsyncDisposable {
  readonly socket: string;
}

/** True when containerd, ctr and runc are installed. */
export function canRunContainerd(): boolean {
  return ["containerd", "ctr", "runc"].every((t) => findTool(t) !== undefined);
}

/** Starts containerd in `dir`; dispose stops it (SIGTERM to this process only). */
export async function startContainerd(dir: string): Promise<PrivateContainerd> {
  const socket = `${dir}/containerd.sock`;
  await Deno.writeTextFile(
    `${dir}/config.toml`,
    `version = 2\nroot = "${dir}/root"\nstate = "${dir}/state"\n` +
      `disabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "${socket}"\n`,
  );
  const child = new Deno.Command("containerd", {
    args: ["-c", `${dir}/config.toml`],
    stdout: "null",
    stderr: "null",
  }).spawn();
  for (let i = 0; i < 100; i++) {
    const ok = await Deno.stat(socket).then((s) => s.isSocket, () => false);
    if (ok) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    socket,
    async [Symbol.asyncDispose]() {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}
