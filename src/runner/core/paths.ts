/**
 * File-system layout of a runner (reference: everything under `/vm`). Tests point `vmDir` at a
 * temp directory; production uses `/vm`. Pure: no I/O.
 * @module
 */

/** Where the runner keeps images, sockets and mounted volumes. */
export interface RunnerPaths {
  /** Root, `/vm` in a pod. */
  readonly vmDir: string;
  /** Disk images, `/vm/images` (the `virtualmachineimages` emptyDir). */
  readonly imagesDir: string;
  /** The root disk, `/vm/images/rootdisk.qcow2`. */
  readonly rootDisk: string;
  /** The runtime ISO, `/vm/images/runtime.iso`. */
  readonly runtimeIso: string;
  /** QMP socket the runner uses for SIGTERM handling, `/vm/qmp-sigterm.sock`. */
  readonly qmpSigtermSocket: string;
  /** virtio-serial log socket, `/vm/log.sock`. */
  readonly logSocket: string;
  /** Pod volumes of disks, `/vm/mounts<mountPath>`. */
  readonly mountsDir: string;
  /** SSH public keys volume, `/vm/ssh`. */
  readonly sshDir: string;
}

/** Builds the layout rooted at `vmDir` (default `/vm`). */
export function runnerPaths(vmDir = "/vm"): RunnerPaths {
  const d = vmDir.replace(/\/+$/, "") || "/";
  const j = (p: string) => (d === "/" ? `/${p}` : `${d}/${p}`);
  return {
    vmDir: d,
    imagesDir: j("images"),
    rootDisk: j("images/rootdisk.qcow2"),
    runtimeIso: j("images/runtime.iso"),
    qmpSigtermSocket: j("qmp-sigterm.sock"),
    logSocket: j("log.sock"),
    mountsDir: j("mounts"),
    sshDir: j("ssh"),
  };
}
