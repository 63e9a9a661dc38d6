/**
 * QMP (QEMU Machine Protocol) client over TCP or a Unix socket: greeting + `qmp_capabilities`
 * handshake, command/response correlation by `id`, asynchronous events, per-call timeouts and
 * AbortSignal cancellation; every reply is parsed with zod. It knows the wire format only; typed
 * command helpers live in `commands.ts`. It must not retry or reconnect on its own: callers decide.
 * @module
 */
import { z } from "zod";
import { ParseError, RemoteError, TimeoutError } from "../errors.ts";
import type { Clock } from "../clock.ts";
import { systemClock } from "../clock.ts";

/** Where a QMP server listens. */
export type QmpAddress =
  | { readonly transport: "tcp"; readonly hostname: string; readonly port: number }
  | { readonly transport: "unix"; readonly path: string };

/** Default dial timeout, as the reference's controller uses (2 s). */
export const QMP_DIAL_TIMEOUT_MS = 2_000;
/** Default per-command timeout. */
export const QMP_COMMAND_TIMEOUT_MS = 10_000;

/** The greeting QEMU sends on connect: `{"QMP": {"version": ..., "capabilities": [...]}}`. */
export const QmpGreetingSchema = z.object({
  QMP: z.object({
    version: z.object({
      qemu: z.object({ major: z.number(), minor: z.number(), micro: z.number() }),
      package: z.string().optional(),
    }).loose(),
    capabilities: z.array(z.string()),
  }).loose(),
});
/** The parsed QMP greeting. */
export type QmpGreeting = z.infer<typeof QmpGreetingSchema>;

const IdSchema = z.union([z.string(), z.number()]);

/** A successful reply: `{"return": ..., "id": ...}`. */
const ReturnSchema = z.object({ return: z.unknown(), id: IdSchema.optional() });
/** An error reply: `{"error": {"class": ..., "desc": ...}, "id": ...}`. */
const ErrorReplySchema = z.object({
  error: z.object({ class: z.string(), desc: z.string() }),
  id: IdSchema.optional(),
});
/** An asynchronous event: `{"event": NAME, "data": {...}, "timestamp": {...}}`. */
export const QmpEventSchema = z.object({
  event: z.string(),
  data: z.record(z.string(), z.unknown()).optional(),
  timestamp: z.object({ seconds: z.number(), microseconds: z.number() }).optional(),
});
/** A QMP event. */
export type QmpEvent = z.infer<typeof QmpEventSchema>;

/** QEMU answered a command with an error object. */
export class QmpCommandError extends RemoteError {
  /** QMP error class, e.g. `GenericError`, `CommandNotFound`, `DeviceNotFound`. */
  readonly errorClass: string;
  /** The command that failed. */
  readonly command: string;
  /** Creates a command error. */
  constructor(command: string, errorClass: string, desc: string) {
    super(`QMP command "${command}" failed: ${errorClass}: ${desc}`);
    this.name = "QmpCommandError";
    this.errorClass = errorClass;
    this.command = command;
  }
}

/** Options for {@linkcode connectQmp}. */
export interface ConnectQmpOptions {
  /** Dial + handshake deadline; default {@linkcode QMP_DIAL_TIMEOUT_MS}. */
  timeoutMs?: number;
  /** Aborts the dial and, later, closes the connection. */
  signal?: AbortSignal;
  /** Clock for timeouts; default the system clock. */
  clock?: Clock;
}

/** Options for one command. */
export interface ExecuteOptions {
  /** Deadline for the reply; default {@linkcode QMP_COMMAND_TIMEOUT_MS}. */
  timeoutMs?: number;
  /** Cancels waiting for the reply (the command may still run in QEMU). */
  signal?: AbortSignal;
}

interface Pending {
  readonly command: string;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

/** Formats an address for messages. */
export function formatQmpAddress(address: QmpAddress): string {
  return address.transport === "tcp"
    ? `tcp:${address.hostname}:${address.port}`
    : `unix:${address.path}`;
}

/** Races `p` against a deadline and an abort signal. */
async function withDeadline<T>(
  p: Promise<T>,
  what: string,
  timeoutMs: number,
  clock: Clock,
  signal: AbortSignal | undefined,
): Promise<T> {
  const stop = new AbortController();
  const onAbort = () => stop.abort(signal?.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    if (signal?.aborted) throw signal.reason;
    const timer = clock.sleep(timeoutMs, stop.signal).then(
      () => Promise.reject(new TimeoutError(`${what}: no answer within ${timeoutMs} ms`)),
      () => Promise.reject(signal?.reason ?? new DOMException("aborted", "AbortError")),
    );
    return await Promise.race([p, timer]);
  } finally {
    signal?.removeEventListener("abort", onAbort);
    stop.abort();
  }
}

/** A connected, handshaken QMP session. Dispose it to close the socket. */
export class QmpClient implements AsyncDisposable {
  readonly #conn: Deno.Conn;
  readonly #address: QmpAddress;
  readonly #clock: Clock;
  readonly #pending = new Map<number, Pending>();
  readonly #listeners = new Set<(event: QmpEvent) => void>();
  readonly #encoder = new TextEncoder();
  readonly #closeWaiters = new Set<(e: unknown) => void>();
  #nextId = 1;
  #closed: Error | undefined;
  #readLoop: Promise<void> | undefined;
  #writeChain: Promise<void> = Promise.resolve();
  #greetingWaiter: { resolve: (g: QmpGreeting) => void; reject: (e: unknown) => void } | undefined;
  /** The greeting QEMU sent, once the handshake is done. */
  greeting: QmpGreeting | undefined;

  private constructor(conn: Deno.Conn, address: QmpAddress, clock: Clock) {
    this.#conn = conn;
    this.#address = address;
    this.#clock = clock;
  }

  /** Connects, reads the greeting and negotiates capabilities. */
  static async connect(address: QmpAddress, options: ConnectQmpOptions = {}): Promise<QmpClient> {
    const clock = options.clock ?? systemClock;
    const timeoutMs = options.timeoutMs ?? QMP_DIAL_TIMEOUT_MS;
    const where = formatQmpAddress(address);
    const dial: Promise<Deno.Conn> = address.transport === "tcp"
      ? Deno.connect({ hostname: address.hostname, port: address.port, transport: "tcp" })
      : Deno.connect({ path: address.path, transport: "unix" });
    let conn: Deno.Conn;
    try {
      conn = await withDeadline(dial, `QMP dial ${where}`, timeoutMs, clock, options.signal);
    } catch (error) {
      // A dial that loses the race may still complete; close it then.
      dial.then((c) => c.close(), () => {});
      throw new RemoteError(`Cannot connect to QMP at ${where}`, { cause: error });
    }
    const client = new QmpClient(conn, address, clock);
    try {
      const greeting = new Promise<QmpGreeting>((resolve, reject) => {
        client.#greetingWaiter = { resolve, reject };
      });
      client.#readLoop = client.#runReadLoop();
      client.greeting = await withDeadline(
        greeting,
        `QMP greeting from ${where}`,
        timeoutMs,
        clock,
        options.signal,
      );
      await client.execute("qmp_capabilities", undefined, { timeoutMs, signal: options.signal });
    } catch (error) {
      await client.close();
      throw new RemoteError(`Cannot negotiate QMP with ${where}`, { cause: error });
    }
    if (options.signal) {
      options.signal.addEventListener("abort", () => void client.close(), { once: true });
    }
    return client;
  }

  /** The address this client is connected to. */
  get address(): QmpAddress {
    return this.#address;
  }

  /** True once the connection is closed (by either side). */
  get closed(): boolean {
    return this.#closed !== undefined;
  }

  /**
   * Runs `command` with optional `args`; resolves with the raw `return` value. Rejects with
   * {@linkcode QmpCommandError} on an error reply, {@linkcode TimeoutError} on deadline.
   */
  async execute(
    command: string,
    args?: Readonly<Record<string, unknown>>,
    options: ExecuteOptions = {},
  ): Promise<unknown> {
    if (this.#closed) {
      throw new RemoteError(`QMP connection to ${formatQmpAddress(this.#address)} is closed`, {
        cause: this.#closed,
      });
    }
    const id = this.#nextId++;
    const reply = new Promise<unknown>((resolve, reject) => {
      this.#pending.set(id, { command, resolve, reject });
    });
    const msg = args === undefined
      ? { execute: command, id }
      : { execute: command, arguments: args, id };
    const line = this.#encoder.encode(JSON.stringify(msg) + "\n");
    this.#writeChain = this.#writeChain.then(() => this.#writeAll(line)).catch((error) => {
      this.#pending.get(id)?.reject(
        new RemoteError(`Cannot send QMP command "${command}"`, { cause: error }),
      );
      this.#pending.delete(id);
    });
    try {
      return await withDeadline(
        reply,
        `QMP command "${command}"`,
        options.timeoutMs ?? QMP_COMMAND_TIMEOUT_MS,
        this.#clock,
        options.signal,
      );
    } finally {
      this.#pending.delete(id);
    }
  }

  /** Runs `command` and parses its `return` value with `schema`. */
  async call<T>(
    command: string,
    args: Readonly<Record<string, unknown>> | undefined,
    schema: z.ZodType<T>,
    options: ExecuteOptions = {},
  ): Promise<T> {
    const raw = await this.execute(command, args, options);
    const parsed = schema.safeParse(raw);
    if (!parsed.success) {
      throw new ParseError(`Unexpected reply to QMP command "${command}"`, {
        paths: parsed.error.issues.map((i) => i.path.join(".")),
        cause: parsed.error,
      });
    }
    return parsed.data;
  }

  /** Registers an event listener; returns a function that removes it. */
  onEvent(listener: (event: QmpEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Resolves with the next event named `name` (and matching `filter`, if given). */
  async waitForEvent(
    name: string,
    options: ExecuteOptions & { filter?: (event: QmpEvent) => boolean } = {},
  ): Promise<QmpEvent> {
    let off: () => void = () => {};
    let onClose: (e: unknown) => void = () => {};
    const got = new Promise<QmpEvent>((resolve, reject) => {
      if (this.#closed) return reject(this.#closed);
      off = this.onEvent((e) => {
        if (e.event === name && (options.filter?.(e) ?? true)) resolve(e);
      });
      onClose = reject;
      this.#closeWaiters.add(onClose);
    });
    try {
      return await withDeadline(
        got,
        `QMP event ${name}`,
        options.timeoutMs ?? QMP_COMMAND_TIMEOUT_MS,
        this.#clock,
        options.signal,
      );
    } finally {
      off();
      this.#closeWaiters.delete(onClose);
    }
  }

  /** Closes the connection; pending calls reject. Idempotent. */
  async close(): Promise<void> {
    this.#fail(new RemoteError(`QMP connection to ${formatQmpAddress(this.#address)} closed`));
    await this.#readLoop;
  }

  /** Same as {@linkcode close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #writeAll(bytes: Uint8Array): Promise<void> {
    let off = 0;
    while (off < bytes.length) off += await this.#conn.write(bytes.subarray(off));
  }

  #fail(error: Error): void {
    if (this.#closed) return;
    this.#closed = error;
    try {
      this.#conn.close();
    } catch (_alreadyClosed) {
      // Closing twice is harmless: the peer may have closed first.
    }
    for (const p of this.#pending.values()) p.reject(error);
    this.#pending.clear();
    for (const r of this.#closeWaiters) r(error);
    this.#closeWaiters.clear();
    this.#greetingWaiter?.reject(error);
    this.#greetingWaiter = undefined;
  }

  async #runReadLoop(): Promise<void> {
    const decoder = new TextDecoder();
    let buf = "";
    const chunk = new Uint8Array(64 * 1024);
    try {
      while (!this.#closed) {
        const n = await this.#conn.read(chunk);
        if (n === null) {
          this.#fail(new RemoteError(`QMP peer ${formatQmpAddress(this.#address)} hung up`));
          return;
        }
        buf += decoder.decode(chunk.subarray(0, n), { stream: true });
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (line.length > 0) this.#handleLine(line);
        }
        if (buf.length > 16 * 1024 * 1024) {
          throw new ParseError("QMP message longer than 16 MiB");
        }
      }
    } catch (error) {
      if (!this.#closed) {
        this.#fail(
          new RemoteError(`QMP connection to ${formatQmpAddress(this.#address)} failed`, {
            cause: error,
          }),
        );
      }
    }
  }

  #handleLine(line: string): void {
    let msg: unknown;
    try {
      msg = JSON.parse(line);
    } catch (error) {
      throw new ParseError(`QMP sent invalid JSON: ${line.slice(0, 200)}`, { cause: error });
    }
    const greeting = QmpGreetingSchema.safeParse(msg);
    if (greeting.success) {
      this.#greetingWaiter?.resolve(greeting.data);
      this.#greetingWaiter = undefined;
      return;
    }
    const ret = ReturnSchema.safeParse(msg);
    if (ret.success) {
      this.#settle(ret.data.id, (p) => p.resolve(ret.data.return));
      return;
    }
    const err = ErrorReplySchema.safeParse(msg);
    if (err.success) {
      this.#settle(
        err.data.id,
        (p) => p.reject(new QmpCommandError(p.command, err.data.error.class, err.data.error.desc)),
      );
      return;
    }
    const event = QmpEventSchema.safeParse(msg);
    if (event.success) {
      for (const l of [...this.#listeners]) l(event.data);
      return;
    }
    throw new ParseError(`QMP sent an unknown message: ${line.slice(0, 200)}`);
  }

  #settle(id: string | number | undefined, fn: (p: Pending) => void): void {
    // Replies without an id (QEMU omits it when a request could not be parsed) go to the oldest
    // pending command: QMP answers in order.
    const key = typeof id === "number" ? id : this.#pending.keys().next().value;
    if (key === undefined) return;
    const p = this.#pending.get(key);
    if (!p) return;
    this.#pending.delete(key);
    fn(p);
  }
}

/** Connects to a QMP server and completes the handshake. */
export function connectQmp(address: QmpAddress, options?: ConnectQmpOptions): Promise<QmpClient> {
  return QmpClient.connect(address, options);
}

/** Connects, runs `fn`, and always closes the connection. */
export async function withQmp<T>(
  address: QmpAddress,
  fn: (client: QmpClient) => Promise<T>,
  options?: ConnectQmpOptions,
): Promise<T> {
  const client = await connectQmp(address, options);
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}
