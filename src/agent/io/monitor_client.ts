/**
 * The agent's side of one vm-monitor websocket connection (§1.3): dial with a timeout, version
 * handshake, request/reply matching by even ids, `UpscaleRequest` delivery, and the replies the
 * reference sends for unknown types, unknown ids and undecodable frames. Frames are parsed with
 * src/api/monitor_protocol.ts; bad frames never throw out of here. Reconnecting and health-check
 * scheduling belong to the runner, not to this file.
 * @module
 */
import {
  createIdMinter,
  encodeAgentMessage,
  encodeVersionRange,
  MONITOR_PROTO_MAX,
  MONITOR_PROTO_MIN,
  type MonitorMessage,
  parseMonitorMessage,
  parseVersionResponse,
  toAllocation,
} from "../../api/monitor_protocol.ts";
import type { Resources } from "../../api/quantity.ts";
import { RemoteError, TimeoutError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { deadline } from "./_deadline.ts";

/** Options for {@linkcode MonitorConnection.open}. */
export interface MonitorConnectOptions {
  /** `ws://<pod IP>:<port>/monitor`. */
  url: string;
  /** Dial + handshake deadline. */
  connectTimeoutMs: number;
  /** Per-request reply deadline. */
  responseTimeoutMs: number;
  /** Logger for protocol oddities. */
  logger: Logger;
  /** Called on every `UpscaleRequest` from the monitor. */
  onUpscaleRequest: () => void;
  /** Called for every inbound frame with its endpoint and outcome (for metrics). */
  onInbound?: (endpoint: string, code: string) => void;
  /** Cancels the dial. */
  signal?: AbortSignal;
}

/** The result of a downscale request. */
export interface DownscaleResult {
  /** True when approved. */
  readonly ok: boolean;
  /** The monitor's status text. */
  readonly status: string;
}

/**
 * Close code used where the reference closes with 1002 (protocol error) or 1011 (internal error).
 * Why (deliberate difference): the WHATWG WebSocket client API only lets a client send 1000 or
 * 3000–4999, so the reason text carries what the code would have said.
 */
const CLOSE_NORMAL = 1000;

interface Pending {
  readonly type: "DownscaleResult" | "UpscaleConfirmation" | "HealthCheck";
  readonly resolve: (m: MonitorMessage) => void;
  readonly reject: (e: Error) => void;
}

/** One open, handshaken connection. */
export class MonitorConnection implements AsyncDisposable {
  readonly #ws: WebSocket;
  readonly #opts: MonitorConnectOptions;
  readonly #pending = new Map<number, Pending>();
  readonly #mintId = createIdMinter("agent");
  readonly #closed: Promise<{ code: number; reason: string }>;
  #isClosed = false;

  private constructor(ws: WebSocket, opts: MonitorConnectOptions) {
    this.#ws = ws;
    this.#opts = opts;
    this.#closed = new Promise((resolve) => {
      ws.addEventListener("close", (ev) => {
        this.#isClosed = true;
        for (const [, p] of this.#pending) {
          p.reject(new RemoteError(`monitor connection closed (${ev.code})`));
        }
        this.#pending.clear();
        resolve({ code: ev.code, reason: ev.reason });
      });
    });
    ws.addEventListener("message", (ev) => this.#onMessage(ev.data));
  }

  /** Dials the monitor and performs the version handshake. */
  static async open(opts: MonitorConnectOptions): Promise<MonitorConnection> {
    const ws = new WebSocket(opts.url);
    using d = deadline(opts.signal, opts.connectTimeoutMs, "monitor connect");
    const signal = d.signal;
    try {
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => reject(signal.reason);
        if (signal.aborted) return onAbort();
        signal.addEventListener("abort", onAbort, { once: true });
        ws.addEventListener("open", () => resolve(), { once: true });
        ws.addEventListener(
          "error",
          () => reject(new RemoteError("websocket error while dialing")),
          {
            once: true,
          },
        );
        ws.addEventListener(
          "close",
          (ev) => reject(new RemoteError(`closed while dialing (${ev.code})`)),
          {
            once: true,
          },
        );
      });
      ws.send(encodeVersionRange({ min: MONITOR_PROTO_MIN, max: MONITOR_PROTO_MAX }));
      const reply = await new Promise<unknown>((resolve, reject) => {
        const onAbort = () => reject(new TimeoutError("monitor handshake timed out"));
        if (signal.aborted) return onAbort();
        signal.addEventListener("abort", onAbort, { once: true });
        ws.addEventListener("message", (ev) => resolve(ev.data), { once: true });
        ws.addEventListener(
          "close",
          (ev) => reject(new RemoteError(`closed during handshake (${ev.code})`)),
          {
            once: true,
          },
        );
      });
      const parsed = parseVersionResponse(reply);
      if (!parsed.ok) {
        ws.close(CLOSE_NORMAL, "protocol error: bad handshake reply");
        throw new RemoteError(`Cannot connect to monitor: bad handshake reply: ${parsed.error}`);
      }
      if ("error" in parsed.value) {
        ws.close(CLOSE_NORMAL, "protocol error: version negotiation failed");
        throw new RemoteError(`Cannot connect to monitor: ${parsed.value.error}`);
      }
    } catch (e) {
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) {
        ws.close(CLOSE_NORMAL, "internal error: connect failed");
      }
      throw e instanceof RemoteError || e instanceof TimeoutError
        ? e
        : new RemoteError("Cannot connect to monitor", { cause: e });
    }
    return new MonitorConnection(ws, opts);
  }

  /** Resolves when the connection has closed. */
  get closed(): Promise<{ code: number; reason: string }> {
    return this.#closed;
  }

  /** Number of requests waiting for a reply. */
  get waiters(): number {
    return this.#pending.size;
  }

  #send(text: string): void {
    if (this.#isClosed || this.#ws.readyState !== WebSocket.OPEN) return;
    this.#ws.send(text);
  }

  #onMessage(data: unknown): void {
    const parsed = parseMonitorMessage(data);
    if (!parsed.ok) {
      const type = parsed.type ?? "<unknown>";
      this.#opts.onInbound?.(type, "invalid");
      const error = parsed.kind === "unknown_type"
        ? `Received message of unknown type: ${JSON.stringify(parsed.type)}`
        : parsed.error;
      this.#opts.logger.warn("invalid message from monitor", { error });
      this.#send(encodeAgentMessage({
        type: "InvalidMessage",
        content: { error },
        id: parsed.id ?? this.#mintId(),
      }));
      return;
    }
    const msg = parsed.value;
    switch (msg.type) {
      case "UpscaleRequest":
        this.#opts.onInbound?.("UpscaleRequest", "ok");
        this.#opts.onUpscaleRequest();
        return;
      case "InvalidMessage": {
        this.#opts.logger.warn("monitor says our message was invalid", { error: msg.error });
        const p = this.#pending.get(msg.id);
        if (p) {
          this.#pending.delete(msg.id);
          p.reject(new RemoteError(`monitor rejected the message: ${msg.error}`));
        }
        return;
      }
      case "InternalError": {
        const p = this.#pending.get(msg.id);
        if (p) {
          this.#pending.delete(msg.id);
          p.reject(new RemoteError(`monitor experienced an internal error: ${msg.error}`));
          return;
        }
        this.#unknownId(msg.type, msg.id);
        return;
      }
      case "DownscaleResult":
      case "UpscaleConfirmation":
      case "HealthCheck": {
        const p = this.#pending.get(msg.id);
        if (p === undefined || p.type !== msg.type) {
          this.#unknownId(msg.type, msg.id);
          return;
        }
        this.#pending.delete(msg.id);
        p.resolve(msg);
        return;
      }
    }
  }

  #unknownId(type: string, id: number): void {
    this.#send(encodeAgentMessage({
      type: "InvalidMessage",
      content: {
        error:
          `Received ${type} with id ${id} but id is unknown or already timed out waiting for a reply`,
      },
      id,
    }));
  }

  async #request(
    type: Pending["type"],
    encode: (id: number) => string,
    signal?: AbortSignal,
  ): Promise<MonitorMessage> {
    if (this.#isClosed) throw new RemoteError("monitor connection is closed");
    const id = this.#mintId();
    using d = deadline(signal, this.#opts.responseTimeoutMs, `monitor ${type}`);
    const all = d.signal;
    return await new Promise<MonitorMessage>((resolve, reject) => {
      const onAbort = () => {
        this.#pending.delete(id);
        reject(
          d.timedOut
            ? new TimeoutError(`monitor did not answer ${type} id ${id} in time`)
            : all.reason,
        );
      };
      all.addEventListener("abort", onAbort, { once: true });
      this.#pending.set(id, {
        type,
        resolve: (m) => {
          all.removeEventListener("abort", onAbort);
          resolve(m);
        },
        reject: (e) => {
          all.removeEventListener("abort", onAbort);
          reject(e);
        },
      });
      this.#send(encode(id));
    });
  }

  /** Asks the monitor to shrink to `target`. */
  async downscale(target: Resources, signal?: AbortSignal): Promise<DownscaleResult> {
    const m = await this.#request(
      "DownscaleResult",
      (id) =>
        encodeAgentMessage({
          type: "DownscaleRequest",
          content: { target: toAllocation(target.vCPUs, target.mem) },
          id,
        }),
      signal,
    );
    return m.type === "DownscaleResult"
      ? { ok: m.Ok, status: m.Status }
      : { ok: false, status: "" };
  }

  /** Tells the monitor it was given `granted`. */
  async upscale(granted: Resources, signal?: AbortSignal): Promise<void> {
    await this.#request(
      "UpscaleConfirmation",
      (id) =>
        encodeAgentMessage({
          type: "UpscaleNotification",
          content: { granted: toAllocation(granted.vCPUs, granted.mem) },
          id,
        }),
      signal,
    );
  }

  /** Sends a health check and waits for its echo. */
  async healthCheck(signal?: AbortSignal): Promise<void> {
    await this.#request(
      "HealthCheck",
      (id) => encodeAgentMessage({ type: "HealthCheck", content: {}, id }),
      signal,
    );
  }

  /** Closes the connection; `reason` says why (the reference's 1011 "internal error" case). */
  close(reason = "internal error"): void {
    if (this.#isClosed) return;
    this.#ws.close(CLOSE_NORMAL, reason.slice(0, 120));
  }

  /** Closes and waits for the close to complete. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close("agent done");
    await this.#closed;
  }
}
