/**
 * neonvm-runner entry point: flags and environment → RunnerConfig → logger, clock → runRunner.
 * Exit status: 0 when the guest stopped by itself or powered off cleanly after SIGTERM, 3 when it
 * had to be quit after the grace period, 1 when QEMU failed, 2 on bad configuration.
 * Usage: deno run -A src/runner/main.ts -vmspec <b64> -vmstatus <b64> -cpu-scaling-mode QmpScaling
 *        -memhp-auto-movable-ratio 301 [-kernelpath ...] [-skip-cgroup-management] ...
 * @module
 */
import { ConfigError, errorChainMessage } from "../lib/errors.ts";
import { createLogger } from "../lib/log.ts";
import { systemClock } from "../lib/clock.ts";
import { loadRunnerConfig } from "./config.ts";
import { runRunner } from "./io/run.ts";

function fileExists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

if (import.meta.main) {
  const boot = createLogger("runner");
  let cfg;
  try {
    cfg = await loadRunnerConfig(Deno.args, Deno.env.toObject(), fileExists);
  } catch (error) {
    boot.error(error instanceof ConfigError ? "bad configuration" : "cannot start", {
      error: errorChainMessage(error),
    });
    Deno.exit(2);
  }
  const log = createLogger("runner", { level: cfg.logLevel, fields: { pod: cfg.podName } });
  try {
    const outcome = await runRunner(cfg, {
      logger: log,
      clock: systemClock,
      randomBytes: (n) => crypto.getRandomValues(new Uint8Array(n)),
      onSignal: (sig, fn) => {
        Deno.addSignalListener(sig, fn);
        return () => Deno.removeSignalListener(sig, fn);
      },
      writeGuestLog: (bytes) => {
        Deno.stdout.writeSync(bytes);
      },
      hostname: Deno.hostname(),
    });
    Deno.exit(outcome.code);
  } catch (error) {
    log.error("runner failed", { error });
    Deno.exit(1);
  }
}
