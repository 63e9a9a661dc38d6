/**
 * Runner → neonvmd calls (reference §6.5): `GET /cpu` and `PUT /cpu` at the guest's address with
 * a 1 s timeout. Errors say whether the daemon was unreachable or slow, so the HTTP API can map
 * them to 502/504.
 * @module
 */
import {
  DAEMON_CALL_TIMEOUT_MS,
  DAEMON_CHANGE_TIMEOUT_MS,
  DAEMON_PATH_CPU,
  DAEMON_PORT,
  DaemonMilliCpuBodySchema,
  encodeDaemonMilliCpu,
  GUEST_IP,
} from "../../api/daemon_api.ts";
import type { MilliCpu } from "../../api/quantity.ts";
import { ParseError, RemoteError, TimeoutError } from "../../lib/errors.ts";

/** The daemon's CPU API as the runner uses it. */
export interface DaemonCpuClient {
  /** Online CPUs × 1000. */
  getCpu(): Promise<MilliCpu>;
  /** Asks the guest to online/offline CPUs. */
  setCpu(milliCpu: MilliCpu): Promise<void>;
}

/** HTTP client for neonvmd at `base` (default `http://169.254.254.254:25183`). */
export function httpDaemonClient(
  base = `http://${GUEST_IP}:${DAEMON_PORT}`,
  timeoutMs = DAEMON_CALL_TIMEOUT_MS,
  changeTimeoutMs = DAEMON_CHANGE_TIMEOUT_MS,
): DaemonCpuClient {
  const call = async (init: RequestInit, timeoutMs: number): Promise<string> => {
    let res: Response;
    try {
      res = await fetch(`${base}${DAEMON_PATH_CPU}`, {
        ...init,
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      if (error instanceof DOMException && error.name === "TimeoutError") {
        throw new TimeoutError(`neonvm-daemon did not answer within ${timeoutMs} ms`, {
          cause: error,
        });
      }
      throw new RemoteError("neonvm-daemon is unreachable", { cause: error });
    }
    const text = await res.text();
    if (!res.ok) {
      throw new RemoteError(`neonvm-daemon answered ${res.status}: ${text.trim()}`, {
        status: res.status,
      });
    }
    return text;
  };
  return {
    getCpu: async () => {
      const parsed = DaemonMilliCpuBodySchema.safeParse(await call({ method: "GET" }, timeoutMs));
      if (!parsed.success) throw new ParseError("neonvm-daemon sent a bad CPU count");
      return parsed.data;
    },
    setCpu: async (milliCpu) => {
      await call({ method: "PUT", body: encodeDaemonMilliCpu(milliCpu) }, changeTimeoutMs);
    },
  };
}
