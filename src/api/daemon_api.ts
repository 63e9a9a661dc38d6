/**
 * Wire types of neonvm-daemon (`neonvmd`, reference §8.1), which listens on 25183 inside the guest
 * and is called by the runner: `GET /cpu` answers the decimal milli-CPU count of online CPUs
 * (`onlineCPUs × 1000`), `PUT /cpu` takes a decimal milli-CPU body; `/files/<path>` carries
 * `{"<name>": {"data": "<base64>"}}`. Pure: no I/O.
 * @module
 */
import { z } from "zod";
import type { MilliCpu } from "./quantity.ts";

/** Port neonvmd listens on in the guest. */
export const DAEMON_PORT = 25183;
/** The guest's address as seen from the runner pod (reference §6.4). */
export const GUEST_IP = "169.254.254.254";
/** Path of the CPU endpoint. */
export const DAEMON_PATH_CPU = "/cpu";
/** Prefix of the file-sync endpoint. */
export const DAEMON_PATH_FILES = "/files";
/** Timeout of runner → daemon reads (reference: 1 s). */
export const DAEMON_CALL_TIMEOUT_MS = 1_000;
/**
 * Timeout of runner → daemon CPU changes. Why not the reference's 1 s: onlining a vCPU can take
 * longer than that under TCG; 4 s stays inside the controller's 5 s budget for `/cpu_change`.
 */
export const DAEMON_CHANGE_TIMEOUT_MS = 4_000;

/** A decimal milli-CPU body (`"2000"`), as both `GET /cpu` and `PUT /cpu` use. */
export const DaemonMilliCpuBodySchema = z.string().trim().regex(/^[0-9]{1,9}$/, {
  message: "expected a decimal milli-CPU count",
}).transform((s) => Number(s));

/** Encodes a milli-CPU body. */
export function encodeDaemonMilliCpu(milliCpu: MilliCpu): string {
  return String(Math.trunc(milliCpu));
}

/** One file of a `PUT /files/<path>` body. */
export const DaemonFileSchema = z.object({ data: z.base64() });
/** Body of `PUT /files/<path>`: file name → base64 content. */
export const DaemonFilesSchema = z.record(
  z.string().regex(/^[^/\0]+$/).refine((n) => n !== "." && n !== ".." && !n.startsWith(".."), {
    message: "file names may not be . or .. or start with ..",
  }),
  DaemonFileSchema,
);
/** Decoded file map. */
export type DaemonFiles = z.infer<typeof DaemonFilesSchema>;
