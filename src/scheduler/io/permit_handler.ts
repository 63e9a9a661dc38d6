/**
 * The agent permit API (reference §1.1, port 10299, any path): a `(Request) => Promise<Response>`
 * handler. POST only, 1 KiB body limit, strict protocol v5.0, then the core decides; a decision
 * that raises what is recorded on the VirtualMachine is persisted there before the permit is
 * returned, anything else is answered from memory and written behind. Requests for the same pod
 * are handled one at a time. Unlike the reference HEAD, which never sets it, the response carries
 * `migrate: {}` when the VM is about to be migrated (D3).
 * The hot path (thousands of requests per second) keeps per-request work small: the body is
 * parsed without a stream, no logging below warn, answer counts kept in a map until scraped, the
 * answer's JSON text cached per permit, and a request answered from memory is decided
 * synchronously without touching the per-pod queue, which only exists while an increase is being
 * recorded for that pod.
 * The handler does not talk to the API except through the writer.
 * @module
 */
import {
  type AgentRequest,
  encodePluginResponse,
  parseAgentRequest,
  validateAgentRequest,
} from "../../api/permit.ts";
import type { Clock } from "../../lib/clock.ts";
import { errorChainMessage } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { applyPermit, decidePermit, type PermitGrant } from "../core/permit.ts";
import { type ClusterState, key } from "../core/state.ts";
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

// Keeps a byte-order mark so JSON.parse rejects it, as Go's decoder and Deno.serve's json() do.
const decoder = new TextDecoder("utf-8", { ignoreBOM: true });

/** A decoded JSON body, or why there is none. */
export type JsonBody = { ok: true; value: unknown } | {
  ok: false;
  reason: "too large" | "bad JSON";
};

/**
 * Reads and parses a JSON body of at most `limit` bytes. With a declared length (HTTP/1.1 framing
 * makes the body exactly that long) `Request.json()` is used: under Deno.serve it parses the
 * already received body without building a stream, the permit API's most common case. Without
 * one (chunked), the body is read through {@linkcode readLimited}.
 */
export async function readJsonLimited(req: Request, limit: number): Promise<JsonBody> {
  const header = req.headers.get("content-length");
  const declared = header === null ? NaN : Number(header);
  if (declared > limit) {
    await req.body?.cancel();
    return { ok: false, reason: "too large" };
  }
  if (Number.isSafeInteger(declared) && declared >= 0) {
    try {
      return { ok: true, value: await req.json() };
    } catch {
      return { ok: false, reason: "bad JSON" };
    }
  }
  const body = await readLimited(req, limit);
  if (body === undefined) return { ok: false, reason: "too large" };
  try {
    return { ok: true, value: JSON.parse(decoder.decode(body)) };
  } catch {
    return { ok: false, reason: "bad JSON" };
  }
}

const JSON_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  "content-type": "application/json",
});

/** Most answers repeat a few permits: their JSON text is kept (bounded) instead of re-encoded. */
const ANSWER_CACHE_MAX = 4096;

function noop(): void {}

/** Creates the permit handler. */
export function createPermitHandler(o: PermitHandlerOptions): (req: Request) => Promise<Response> {
  // Pods with a request being recorded on their VM (the tail of their queue). A request arriving
  // meanwhile waits its turn; every other request is decided at once (JS runs it atomically).
  const queues = new Map<string, Promise<void>>();
  const serialised = (
    podKey: string,
    fn: () => Response | Promise<Response>,
  ): Response | Promise<Response> => {
    const prev = queues.get(podKey);
    let r: Response | Promise<Response>;
    if (prev === undefined) {
      r = fn();
      if (!(r instanceof Promise)) return r; // answered from memory: nothing to hold
    } else {
      r = prev.then(fn, fn);
    }
    const tail = r.then(noop, noop);
    queues.set(podKey, tail);
    tail.then(() => {
      if (queues.get(podKey) === tail) queues.delete(podKey);
    });
    return r;
  };

  const m = o.metrics;
  const count = (code: number, node: string) => m?.countPermitAnswer(code, node);
  const latencyMemory = m?.permitLatency.labels({ kind: "memory" });
  const latencyPersisted = m?.permitLatency.labels({ kind: "persisted" });

  const answers = new Map<string, string>();
  const answerText = (g: PermitGrant): string => {
    const k = `${g.permit.cpu} ${g.permit.mem} ${g.migrate}`;
    let text = answers.get(k);
    if (text === undefined) {
      text = JSON.stringify(encodePluginResponse({
        permit: { vCPUs: g.permit.cpu, mem: g.permit.mem },
        ...(g.migrate ? { migrate: {} } : {}),
      }));
      if (answers.size >= ANSWER_CACHE_MAX) answers.clear();
      answers.set(k, text);
    }
    return text;
  };

  const granted = (g: PermitGrant, start: number, persisted: boolean): Response => {
    o.onGrant?.(g);
    count(200, g.node);
    (persisted ? latencyPersisted : latencyMemory)?.observe((o.clock.now() - start) / 1000);
    return new Response(answerText(g), { status: 200, headers: JSON_HEADERS });
  };

  const persistThenAnswer = async (
    g: PermitGrant,
    podKey: string,
    start: number,
  ): Promise<Response> => {
    try {
      await o.writer.persist(g.vmKey);
    } catch (error) {
      // The decision stays counted (it may have landed); the agent will ask again.
      o.logger.warn("Failed to record approval on VirtualMachine", {
        virtualmachine: g.vmKey,
        pod: podKey,
        error: errorChainMessage(error),
      });
      count(500, g.node);
      return textError(500, "failed to patch VM object");
    }
    return granted(g, start, true);
  };

  const decide = (
    agentReq: AgentRequest,
    podKey: string,
    start: number,
  ): Response | Promise<Response> => {
    const outcome = decidePermit(o.state, agentReq, podKey);
    if (outcome.kind === "refuse") {
      count(outcome.status, "");
      return textError(outcome.status, outcome.message);
    }
    applyPermit(o.state, outcome);
    // Safety invariant: anything above what the VM records is on the VM before the permit leaves.
    if (outcome.mustPersist) return persistThenAnswer(outcome, podKey, start);
    o.writer.writeBehind(outcome.vmKey);
    return granted(outcome, start, false);
  };

  const handle = async (req: Request): Promise<Response> => {
    const start = o.clock.now();
    if (req.method !== "POST") {
      count(400, "");
      return textError(400, "must be POST");
    }
    const body = await readJsonLimited(req, MAX_BODY_BYTES);
    if (!body.ok) {
      // Like Go's MaxBytesReader under a JSON decoder: too long is also "bad JSON".
      count(400, "");
      return textError(400, "bad JSON");
    }
    const parsed = parseAgentRequest(body.value);
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
    const podKey = key(agentReq.pod.namespace, agentReq.pod.name);
    return await serialised(podKey, () => decide(agentReq, podKey, start));
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
