/**
 * Helpers for multi-process monitor suites: a free loopback port, starting `src/monitor/main.ts`
 * as a child process and waiting until it listens, and a handshaken websocket client.
 * Test support only.
 * @module
 */
import { QueueClient } from "../../src/monitor/io/_fakes.ts";

/** A free TCP port on 127.0.0.1 (bound then released). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** A running monitor child process. */
export interface MonitorProcess extends AsyncDisposable {
  /** The child. */
  readonly child: Deno.ChildProcess;
  /** `ws://127.0.0.1:<port>/monitor`. */
  readonly url: string;
  /** Log lines seen so far (parsed JSON). */
  readonly logs: Record<string, unknown>[];
  /** Sends SIGTERM and returns the exit code. */
  stop(): Promise<number>;
}

const MAIN = new URL("../../src/monitor/main.ts", import.meta.url).pathname;

/** Starts the monitor with `args` (plus `--addr`) and waits for its "listening" log line. */
export async function startMonitor(args: string[], timeoutMs = 20_000): Promise<MonitorProcess> {
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, `--addr=127.0.0.1:${port}`, ...args],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const logs: Record<string, unknown>[] = [];
  let listening!: () => void;
  const listeningP = new Promise<void>((r) => (listening = r));
  const pump = (async () => {
    let buf = "";
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const obj = JSON.parse(line);
          logs.push(obj);
          if (obj.msg === "listening") listening();
        } catch {
          logs.push({ raw: line });
        }
      }
    }
  })();
  // With a quiet --log-level there is no "listening" line: also poll the port.
  let polling = true;
  (async () => {
    while (polling) {
      try {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        conn.close();
        listening();
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  })();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const exited = child.status.then((s) => {
    throw new Error(`monitor exited early (${s.code}): ${JSON.stringify(logs.slice(-5))}`);
  });
  try {
    await Promise.race([
      listeningP,
      exited,
      new Promise((_, rej) => {
        timer = setTimeout(() => rej(new Error("monitor did not start listening")), timeoutMs);
      }),
    ]);
  } catch (e) {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await pump.catch(() => undefined);
    throw e;
  } finally {
    polling = false;
    clearTimeout(timer);
    exited.catch(() => undefined);
  }
  let stopped: Promise<number> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      const s = await child.status;
      await pump.catch(() => undefined);
      return s.code;
    })();
    return stopped;
  };
  return {
    child,
    url: `ws://127.0.0.1:${port}/monitor`,
    logs,
    stop,
    async [Symbol.asyncDispose]() {
      await stop();
    },
  };
}

/** Connects and completes the v1.0 handshake. */
export async function connectAgent(url: string): Promise<QueueClient> {
  const c = new QueueClient(url);
  await c.opened();
  c.send('{"min":1,"max":1}');
  const reply = await c.next(5_000);
  if (reply !== '{"version":1}') throw new Error(`unexpected handshake reply ${reply}`);
  return c;
}
