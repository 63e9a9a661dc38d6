/**
 * A root shell in a running cluster guest, for diagnosis and checks the API cannot make: the
 * vm-builder guest runs a getty with a shell on ttyS0, which the runner's QEMU exposes as a pty
 * (`-serial pty`) inside the runner container. On this single-host cluster the container's
 * processes are host processes, so the QEMU process is found by its HOSTNAME (the runner pod's
 * name) and the pty through /proc/<pid>/root/dev/pts/<tty-index>. Reads only; must not change the
 * VM, the pod or QEMU.
 *
 * Needs socat. Usage: deno run -A tests/e2e/_guest_shell.ts <runner-pod-name> '<shell command>'
 * @module
 */

/** The pid of the QEMU process whose environment names the runner pod `podName`. */
export async function qemuPidOf(podName: string): Promise<number | undefined> {
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmd = await Deno.readTextFile(`/proc/${e.name}/cmdline`);
      if (!cmd.startsWith("qemu-system")) continue;
      const env = (await Deno.readTextFile(`/proc/${e.name}/environ`)).split("\0");
      if (env.includes(`HOSTNAME=${podName}`)) return Number(e.name);
    } catch {
      // The process went away or is not readable.
    }
  }
  return undefined;
}

/** The guest's ttyS0 as a path openable from the host (the slave side of QEMU's pty). */
export async function serialPtyOf(pid: number): Promise<string> {
  for await (const e of Deno.readDir(`/proc/${pid}/fd`)) {
    const link = await Deno.readLink(`/proc/${pid}/fd/${e.name}`).catch(() => "");
    if (!link.endsWith("ptmx")) continue;
    const info = await Deno.readTextFile(`/proc/${pid}/fdinfo/${e.name}`);
    const m = /tty-index:\s*(\d+)/.exec(info);
    if (m) return `/proc/${pid}/root/dev/pts/${m[1]}`;
  }
  throw new Error(`QEMU ${pid} has no pty`);
}

/**
 * Runs `command` in the guest's serial shell and resolves with its output (without the echo),
 * or rejects after `timeoutMs`.
 */
export async function guestShell(
  podName: string,
  command: string,
  timeoutMs = 30_000,
): Promise<string> {
  const pid = await qemuPidOf(podName);
  if (pid === undefined) throw new Error(`no QEMU process for pod ${podName} on this host`);
  const pty = await serialPtyOf(pid);
  // socat, not Deno.open: Deno reads a tty synchronously and would block its event loop.
  const child = new Deno.Command("socat", {
    args: ["-", `FILE:${pty},raw,echo=0`],
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const marker = `__E2E_${crypto.randomUUID().slice(0, 8)}__`;
  let out = "";
  const dec = new TextDecoder();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const reader = child.stdout.getReader();
  const writer = child.stdin.getWriter();
  try {
    const reading = (async () => {
      const done = new RegExp(`${marker}E:\\d+`);
      while (!done.test(out)) {
        const r = await reader.read();
        if (r.done) break;
        out += dec.decode(r.value, { stream: true });
      }
    })();
    // The quotes split the markers in the echoed command line, so only the output matches them.
    await writer.write(
      new TextEncoder().encode(`\necho ${marker}''S; ${command}; echo ${marker}''E:$?\n`),
    );
    await Promise.race([
      reading,
      new Promise((_, rej) =>
        timer = setTimeout(
          () => rej(new Error(`guest shell timeout: ${command}\n${out}`)),
          timeoutMs,
        )
      ),
    ]);
  } finally {
    clearTimeout(timer);
    await writer.close().catch(() => undefined);
    try {
      child.kill("SIGTERM");
    } catch {
      // Already exited.
    }
    await reader.cancel().catch(() => undefined);
    await child.status;
  }
  const text = out.replace(/\r/g, "");
  const m = new RegExp(`${marker}S\n([\\s\\S]*?)${marker}E:\\d+`).exec(text);
  if (!m) throw new Error(`guest shell: no output markers in ${JSON.stringify(text.slice(-500))}`);
  return m[1]!.trim();
}

if (import.meta.main) {
  const [pod, ...cmd] = Deno.args;
  if (!pod || cmd.length === 0) {
    Deno.stderr.writeSync(new TextEncoder().encode("usage: _guest_shell.ts <pod> '<command>'\n"));
    Deno.exit(2);
  }
  Deno.stdout.writeSync(new TextEncoder().encode((await guestShell(pod, cmd.join(" "))) + "\n"));
}
