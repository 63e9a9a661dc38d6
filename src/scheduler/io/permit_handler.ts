/**
 * The agent permit API (reference §1.1, port 10299, any path): a `(Request) => Promise<Response>`
 * handler. POST only, 1 KiB body limit, strict protocol v5.0, then the core decides; a decision
 * that raises what is recorded on the VirtualMachine is persisted there before the permit is
 * returned, anything else is answered from memory and written behind. Requests for the same pod
 * are handled one at a time. Unlike the reference HEAD, which never sets it, the response carries
 * `migrate: {}` when the VM is about to be migrated (D3).
 * The handler does not talk to the API except through the writer.
 * @module
 */
import { encodePluginResponse, parseAgentRequest, validateAgentRequest } from "../../api/permit.ts";
import type { Clock } from "../../lib/clock.ts";
import { errorChainMessage } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { applyPermit, decidePermit, type PermitGrant } from "../core/permit.ts";
import type { ClusterState } from "../core/state.ts";
import type { SchedulerMetrics } from "./metrics.ts";
import type { VmAnnotationWriter } from "./vm_writer.ts";

/** The reference's `MaxHTTPBodySize`. */
export const MAX_BODY_BYTES = 1024;

/** Options for {@linkcode createPermitHandler}. */
export interface PermitHandlerOptions {
  /** The accounting state. */
  state: ClusterState;
  /** Records decisions on VMs. */
  writer: VmAnnotationWriter;
  /** Logger. */
  logger: Logger;
  /** Clock for latency. */
  clock: Clock;
  /** False while this replica is not the leader: everything answers 503. */
  isLeader: () => boolean;
  /** Metrics, when exported. */
  metrics?: SchedulerMetrics;
  /** Called after each grant (to rebalance its node). */
  onGrant?: (grant: PermitGrant) => void;
}

/** Writes a text error the way Go's `http.Error` does. */
export function textError(status: number, message: string): Response {
  return new Response(message + "\n", {
    status,
    headers: {
      "content-type": "text/plain; charset=utf-8",
      "x-content-type-options": "nosniff",
    },
  });
}

/** Reads at most `limit` bytes of a body; undefined when it is longer. */
export async function readLimited(req: Request, limit: number): Promise<Uint8Array | undefined> {
  const declared = Number(req.headers.get("content-length") ?? "NaN");
  if (Number.isFinite(declared) && declared > limit) {
    await req.body?.cancel();
    return undefined;
  }
  if (req.body === null) return new Uint8Array();
  if (Number.isFinite(declared)) {
    // Length known and within the limit: read it in one go (the common case).
    const buf = new Uint8Array(await req.arrayBuffer());
    return buf.byteLength > limit ? undefined : buf;
  }
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      return undefined;
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}

const decoder = new TextDecoder();

/** Creates the permit handler. */
export function createPermitHandler(o: PermitHandlerOptions): (req: Request) => Promise<Response> {
  const locks = new Map<string, Promise<unknown>>();
  const withLock = async <T>(k: string, fn: () => Promise<T>): Promise<T> => {
    const prev = locks.get(k);
    if (prev === undefined) {
      // Fast path: nothing queued for this pod.
      const p = fn();
      const tracked = p.then(() => {}, () => {});
      locks.set(k, tracked);
      try {
        return await p;
      } finally {
        if (locks.get(k) === tracked) locks.delete(k);
      }
    }
    const p = prev.then(fn, fn);
    const tracked = p.then(() => {}, () => {});
    locks.set(k, tracked);
    try {
      return await p;
    } finally {
      if (locks.get(k) === tracked) locks.delete(k);
    }
  };

  const count = (code: number, node: string) => {
    o.metrics?.requests.inc({ code: String(code) });
    o.metrics?.requestResults.inc({ code: String(code), node });
  };

  const handle = async (req: Request): Promise<Response> => {
    const start = o.clock.now();
    if (req.method !== "POST") {
      count(400, "");
      return textError(400, "must be POST");
    }
    const body = await readLimited(req, MAX_BODY_BYTES);
    let json: unknown;
    try {
      if (body === undefined) throw new RangeError("body too large");
      json = JSON.parse(decoder.decode(body));
    } catch {
      count(400, "");
      return textError(400, "bad JSON");
    }
    const parsed = parseAgentRequest(json);
    if (!parsed.ok) {
      count(400, "");
      return textError(400, "bad JSON");
    }
    const agentReq = parsed.value;
    const invalid = validateAgentRequest(agentReq);
    if (invalid !== undefined) {
      count(400, "");
      return textError(400, invalid);
    }
    if (!o.isLeader()) {
      count(503, "");
      return textError(503, "this scheduler replica is not the leader");
    }
    const podKey = `${agentReq.pod.namespace}/${agentReq.pod.name}`;
    return await withLock(podKey, async () => {
      const outcome = decidePermit(o.state, agentReq);
      if (outcome.kind === "refuse") {
        count(outcome.status, "");
        return textError(outcome.status, outcome.message);
      }
      applyPermit(o.state, outcome);
      let kind = "memory";
      if (outcome.mustPersist) {
        kind = "persisted";
        try {
          await o.writer.persist(outcome.vmKey);
        } catch (error) {
          // The decision stays counted (it may have landed); the agent will ask again.
          o.logger.warn("Failed to record approval on VirtualMachine", {
            virtualmachine: outcome.vmKey,
            pod: podKey,
            error: errorChainMessage(error),
          });
          count(500, outcome.node);
          return textError(500, "failed to patch VM object");
        }
      } else {
        o.writer.writeBehind(outcome.vmKey);
      }
      o.onGrant?.(outcome);
      count(200, outcome.node);
      o.metrics?.permitLatency.observe({ kind }, (o.clock.now() - start) / 1000);
      return new Response(
        JSON.stringify(encodePluginResponse({
          permit: { vCPUs: outcome.permit.cpu, mem: outcome.permit.mem },
          ...(outcome.migrate ? { migrate: {} } : {}),
        })),
        { status: 200, headers: { "content-type": "application/json" } },
      );
    });
  };

  return async (req: Request): Promise<Response> => {
    try {
      return await handle(req);
    } catch (error) {
      o.logger.error("Permit request handler failed", { error });
      count(500, "");
      return textError(500, "request handler panicked");
    }
  };
}
