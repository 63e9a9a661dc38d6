/**
 * The runner's HTTP API (reference §1.5, §6.5) as a `(Request) => Response` handler:
 * `GET /cpu_current`, `POST /cpu_change` (`{"VCPUs": <MilliCPU>}`), `GET /ready`, and `GET /metrics`
 * when network monitoring is on. Bodies are
 * parsed with zod; a bad body is 400 and changes nothing. In SysfsScaling mode CPU changes go to
 * neonvm-daemon in the guest; daemon trouble maps to 502 (unreachable) / 504 (timeout).
 * Must not talk to QMP: CPU hotplug is the controller's job.
 * @module
 */
import {
  encodeVCpus,
  RUNNER_PATH_CPU_CHANGE,
  RUNNER_PATH_CPU_CURRENT,
  RUNNER_PATH_READY,
  type RunnerCpuScalingMode,
  VCpuChangeSchema,
} from "../../api/runner_api.ts";
import type { MilliCpu } from "../../api/quantity.ts";
import { RemoteError, TimeoutError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { sysfsCpuCurrent } from "../core/cpu.ts";
import type { DaemonCpuClient } from "./daemon_client.ts";

/** What the handler needs. */
export interface RunnerApiDeps {
  /** CPU scaling mode. */
  readonly mode: RunnerCpuScalingMode;
  /** The CPU amount at startup (`cpus.use`, or `cpus.min` as the reference does). */
  readonly initialMilliCpu: MilliCpu;
  /** Largest amount accepted (`cpus.max`). */
  readonly maxMilliCpu: MilliCpu;
  /** neonvm-daemon client (SysfsScaling). */
  readonly daemon: DaemonCpuClient;
  /** QEMU cgroup, when the runner manages it. */
  readonly cgroup?: { setCpu(milliCpu: MilliCpu): Promise<void> };
  /** Logger. */
  readonly logger: Logger;
  /** `/metrics` body, when network monitoring is on. */
  readonly metrics?: () => Promise<string>;
}

/** The handler plus a view of the stored CPU amount. */
export interface RunnerApi {
  /** Handles one request. */
  handle(req: Request): Promise<Response>;
  /** The last CPU amount accepted by `/cpu_change`. */
  storedMilliCpu(): MilliCpu;
}

const json = (body: unknown, status = 200) =>
  new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
const text = (body: string, status: number) =>
  new Response(body, { status, headers: { "content-type": "text/plain; charset=utf-8" } });

function daemonErrorStatus(error: unknown): number {
  if (error instanceof TimeoutError) return 504;
  if (error instanceof RemoteError && error.status === undefined) return 502;
  return 500;
}

/** Creates the runner API. */
export function createRunnerApi(deps: RunnerApiDeps): RunnerApi {
  let stored = deps.initialMilliCpu;
  const log = deps.logger;
  // Serialise changes so two concurrent /cpu_change calls cannot interleave daemon and cgroup.
  let chain: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = chain.then(fn, fn);
    chain = p.catch(() => {});
    return p;
  };

  const cpuCurrent = async (): Promise<Response> => {
    if (deps.mode === "QmpScaling") return json(encodeVCpus(stored));
    try {
      const daemonMilli = await deps.daemon.getCpu();
      return json(encodeVCpus(sysfsCpuCurrent(stored, daemonMilli)));
    } catch (error) {
      log.warn("cannot read guest CPUs", { error });
      return text(`cannot read guest CPUs: ${String(error)}\n`, daemonErrorStatus(error));
    }
  };

  const cpuChange = async (req: Request): Promise<Response> => {
    let body: unknown;
    try {
      body = JSON.parse(await req.text());
    } catch {
      return text("bad body: not JSON\n", 400);
    }
    const parsed = VCpuChangeSchema.safeParse(body);
    if (!parsed.success) return text('bad body: expected {"VCPUs": <MilliCPU>}\n', 400);
    const milli = parsed.data.VCPUs;
    // Why: the reference accepts any value; zero or more than cpus.max cannot be applied, so it
    // is refused here like any other bad body.
    if (milli <= 0 || milli > deps.maxMilliCpu) {
      return text(`bad body: VCPUs must be in (0, ${deps.maxMilliCpu}m]\n`, 400);
    }
    return await serial(async () => {
      if (deps.mode === "SysfsScaling") {
        try {
          await deps.daemon.setCpu(milli);
        } catch (error) {
          log.warn("cannot change guest CPUs", { error, milliCpu: milli });
          return text(`cannot change guest CPUs: ${String(error)}\n`, daemonErrorStatus(error));
        }
      }
      // Why: the reference only stores the value in QmpScaling mode and never updates the QEMU
      // cgroup after startup (§11); when we manage the cgroup, it follows every change.
      if (deps.cgroup) await deps.cgroup.setCpu(milli);
      stored = milli;
      log.info("CPU changed", { milliCpu: milli, mode: deps.mode });
      return text("", 200);
    });
  };

  const ready = async (): Promise<Response> => {
    if (deps.mode === "QmpScaling") return text("", 200);
    try {
      await deps.daemon.getCpu();
      return text("", 200);
    } catch {
      return text("neonvm-daemon not ready\n", 503);
    }
  };

  return {
    storedMilliCpu: () => stored,
    handle: async (req) => {
      const { pathname } = new URL(req.url);
      try {
        switch (pathname) {
          case RUNNER_PATH_CPU_CURRENT:
            return req.method === "GET" ? await cpuCurrent() : text("method not allowed\n", 405);
          case RUNNER_PATH_CPU_CHANGE:
            return req.method === "POST" ? await cpuChange(req) : text("only POST\n", 400);
          case RUNNER_PATH_READY:
            return await ready();
          case "/metrics":
            if (!deps.metrics) return text("not found\n", 404);
            return new Response(await deps.metrics(), {
              headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
            });
          default:
            return text("not found\n", 404);
        }
      } catch (error) {
        log.error("runner API request failed", { pathname, error });
        return text(`internal error: ${String(error)}\n`, 500);
      }
    },
  };
}
