/**
 * The monitor's websocket endpoint, `GET /monitor` (reference §1.3): one agent connection at a
 * time (a new one closes the previous), the v1.0 handshake within 4 s, then one frame at a time
 * into the service. Frames it cannot use get `InvalidMessage` and the connection stays up — a
 * deliberate fix: the reference monitor drops the connection on an unparseable frame.
 * Must not decide anything (the service and core do).
 * @module
 */
import {
  CLOSE_PROTOCOL_ERROR,
  encodeMonitorMessage,
  encodeVersionResponse,
  isAgentId,
  MONITOR_PATH,
  type MonitorMessage,
  negotiateVersion,
  parseAgentMessage,
  parseVersionRange,
} from "../../api/monitor_protocol.ts";
import type { Clock } from "../../lib/clock.ts";
import type { Logger } from "../../lib/log.ts";
import type { MonitorService } from "./service.ts";

/** Options for {@linkcode MonitorServer}. */
export interface MonitorServerOptions {
  /** Handles requests and owns state. */
  readonly service: MonitorService;
  /** Time source for the handshake deadline. */
  readonly clock: Clock;
  /** Logger. */
  readonly logger: Logger;
  /** Deadline for the agent's version frame; default 4000 ms (reference). */
  readonly handshakeTimeoutMs?: number;
  /** Requests queued on one connection before new ones get `InternalError`; default 32. */
  readonly maxInFlight?: number;
}

/** Counters for tests and benchmarks. */
export interface ServerStats {
  /** Connections accepted. */
  connections: number;
  /** Connections closed because a newer one arrived. */
  replaced: number;
  /** `InvalidMessage` replies sent. */
  invalidMessages: number;
}

/** Serves `/monitor`; its {@linkcode handler} plugs into `Deno.serve`. */
export class MonitorServer {
  readonly #opts: Required<MonitorServerOptions>;
  #current: Session | undefined;
  /** Counters. */
  readonly stats: ServerStats = { connections: 0, replaced: 0, invalidMessages: 0 };

  /** Creates the endpoint. */
  constructor(options: MonitorServerOptions) {
    this.#opts = { handshakeTimeoutMs: 4_000, maxInFlight: 32, ...options };
  }

  /** The HTTP handler: upgrades `GET /monitor`, 404 elsewhere, 426 without an upgrade. */
  readonly handler = (req: Request): Response => {
    const url = new URL(req.url);
    if (url.pathname !== MONITOR_PATH) return new Response("not found\n", { status: 404 });
    if (req.method !== "GET") return new Response("method not allowed\n", { status: 405 });
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("expected a websocket upgrade\n", { status: 426 });
    }
    let upgraded: { socket: WebSocket; response: Response };
    try {
      upgraded = Deno.upgradeWebSocket(req);
    } catch (error) {
      // A malformed upgrade (e.g. no Sec-WebSocket-Key) is the client's fault, not ours.
      this.#opts.logger.warn("bad websocket upgrade", { error });
      return new Response("bad websocket upgrade\n", { status: 400 });
    }
    const { socket, response } = upgraded;
    const previous = this.#current;
    const session = new Session(socket, this, ++this.stats.connections);
    this.#current = session;
    if (previous !== undefined) {
      this.stats.replaced++;
      previous.close(1000, "replaced by a newer connection");
    }
    return response;
  };

  /** Closes the current connection, if any. */
  close(): void {
    this.#current?.close(1001, "monitor shutting down");
    this.#current = undefined;
  }

  /** @internal */
  get options(): Required<MonitorServerOptions> {
    return this.#opts;
  }

  /** @internal */
  forget(session: Session): void {
    if (this.#current === session) this.#current = undefined;
  }
}

type Phase = "handshake" | "ready" | "closed";

/** One agent connection. */
class Session {
  readonly #socket: WebSocket;
  readonly #server: MonitorServer;
  readonly #log: Logger;
  readonly #deadline = new AbortController();
  #phase: Phase = "handshake";
  #inFlight = 0;
  #detach: (() => void) | undefined;

  constructor(socket: WebSocket, server: MonitorServer, n: number) {
    this.#socket = socket;
    this.#server = server;
    this.#log = server.options.logger.child("session", { connection: n });
    socket.binaryType = "arraybuffer";
    socket.onopen = () => this.#startDeadline();
    socket.onmessage = (ev) => this.#onFrame(ev.data);
    socket.onclose = (ev) => this.#onClosed(ev.code, ev.reason);
    socket.onerror = () => this.#log.warn("websocket error");
  }

  close(code: number, reason: string): void {
    this.#finish();
    if (
      this.#socket.readyState === WebSocket.OPEN || this.#socket.readyState === WebSocket.CONNECTING
    ) {
      this.#socket.close(code, reason);
    }
  }

  #startDeadline(): void {
    const { clock, handshakeTimeoutMs } = this.#server.options;
    clock.sleep(handshakeTimeoutMs, this.#deadline.signal).then(
      () => {
        if (this.#phase !== "handshake") return;
        this.#log.warn("handshake timed out", { timeoutMs: handshakeTimeoutMs });
        this.close(CLOSE_PROTOCOL_ERROR, "no protocol version received in time");
      },
      () => undefined, // aborted: the handshake finished or the connection closed
    );
  }

  #onFrame(data: unknown): void {
    if (this.#phase === "closed") return;
    if (this.#phase === "handshake") return this.#onHandshake(data);
    const parsed = parseAgentMessage(data);
    if (!parsed.ok) {
      // Never answer the peer's own error reports with an error: that could loop forever.
      if (parsed.type === "InvalidMessage" || parsed.type === "InternalError") {
        this.#log.warn("unparseable error report from agent", { error: parsed.error });
        return;
      }
      this.#log.warn("invalid message from agent", { kind: parsed.kind, error: parsed.error });
      return this.#invalid(parsed.error, parsed.id ?? 0);
    }
    const msg = parsed.value;
    if (msg.type === "InvalidMessage" || msg.type === "InternalError") {
      if (isAgentId(msg.id)) {
        this.#log.warn("agent error report names an id the monitor never used", { id: msg.id });
      }
    } else if (!isAgentId(msg.id)) {
      return this.#invalid(
        `Received ${msg.type} with id ${msg.id} but agent ids must be even (odd ids are the monitor's)`,
        msg.id,
      );
    }
    const { service, maxInFlight } = this.#server.options;
    if (this.#inFlight >= maxInFlight) {
      this.#send({
        type: "InternalError",
        error: `too many requests in flight (limit ${maxInFlight})`,
        id: msg.id,
      });
      return;
    }
    this.#inFlight++;
    service.handle(msg).then(
      (reply) => {
        this.#inFlight--;
        if (reply !== undefined) this.#send(reply);
      },
      (error: unknown) => {
        // handle() maps request failures to InternalError itself; this is a bug path.
        this.#inFlight--;
        this.#log.error("request handler failed", { error });
        this.#send({ type: "InternalError", error: String(error), id: msg.id });
      },
    );
  }

  #onHandshake(data: unknown): void {
    const parsed = parseVersionRange(data);
    const reply = parsed.ok
      ? negotiateVersion(parsed.value)
      : { error: `cannot parse protocol version range: ${parsed.error}` };
    this.#deadline.abort();
    this.#sendText(encodeVersionResponse(reply));
    if ("error" in reply) {
      this.#log.warn("handshake failed", { error: reply.error });
      this.close(CLOSE_PROTOCOL_ERROR, "protocol version negotiation failed");
      return;
    }
    this.#phase = "ready";
    this.#detach = this.#server.options.service.attach((m) => this.#send(m));
    this.#log.info("agent connected", { version: reply.version });
  }

  #invalid(error: string, id: number): void {
    this.#server.stats.invalidMessages++;
    this.#send({ type: "InvalidMessage", error, id });
  }

  #send(msg: MonitorMessage): boolean {
    return this.#sendText(encodeMonitorMessage(msg));
  }

  #sendText(text: string): boolean {
    if (this.#phase === "closed" || this.#socket.readyState !== WebSocket.OPEN) return false;
    this.#socket.send(text);
    return true;
  }

  #onClosed(code: number, reason: string): void {
    if (this.#phase !== "closed") this.#log.info("agent disconnected", { code, reason });
    this.#finish();
  }

  #finish(): void {
    this.#phase = "closed";
    this.#deadline.abort();
    this.#detach?.();
    this.#detach = undefined;
    this.#server.forget(this);
  }
}
