/**
 * The agent ↔ vm-monitor websocket protocol, v1.0 (reference §1.3): version negotiation, the
 * asymmetric framing (agent→monitor `{"content":…,"type":…,"id":…}`, monitor→agent payload fields
 * flattened next to `type` and `id`), even (agent) / odd (monitor) ids, and all eight message
 * types. Zod schemas for every frame, encoders that produce the exact wire bytes, and parsers that
 * never throw: they return a typed result naming what was wrong.
 * Pure: no I/O, no clocks, no sockets.
 * @module
 */
import { z } from "zod";

// ---------------------------------------------------------------------------------------------
// Versions and handshake
// ---------------------------------------------------------------------------------------------

/** Monitor protocol version number; `1` = v1.0 is the only one. `0` is invalid. */
export type MonitorProtoVersion = number;

/** Protocol v1.0. */
export const MONITOR_PROTO_V1_0: MonitorProtoVersion = 1;
/** Lowest version this implementation speaks. */
export const MONITOR_PROTO_MIN: MonitorProtoVersion = MONITOR_PROTO_V1_0;
/** Highest version this implementation speaks. */
export const MONITOR_PROTO_MAX: MonitorProtoVersion = MONITOR_PROTO_V1_0;

/** Websocket path the monitor serves. */
export const MONITOR_PATH = "/monitor";
/** Default monitor port (agent config `monitor.serverPort`). */
export const MONITOR_DEFAULT_PORT = 10301;

/**
 * Largest frame either side accepts, in bytes of UTF-8. Every v1.0 message is well under 1 KiB
 * (the longest are error strings); 64 KiB leaves room for long errors while bounding memory.
 */
export const MAX_FRAME_BYTES = 64 * 1024;

/** Websocket close code for a failed handshake (RFC 6455 "protocol error"). */
export const CLOSE_PROTOCOL_ERROR = 1002;
/** Websocket close code for internal failures (RFC 6455 "internal error"). */
export const CLOSE_INTERNAL_ERROR = 1011;

const VersionSchema = z.number().int().min(1).max(255);

/** The agent's first frame: the inclusive range of versions it speaks, `{"min":1,"max":1}`. */
export const VersionRangeSchema = z
  .object({ min: VersionSchema, max: VersionSchema })
  .refine((r) => r.min <= r.max, { message: "min version is greater than max version" });
/** Inclusive range of protocol versions. */
export type VersionRange = z.infer<typeof VersionRangeSchema>;

/** The monitor's handshake reply: `{"version":1}` or `{"error":"<message>"}`. */
export const VersionResponseSchema = z.union([
  z.object({ version: VersionSchema }).strict(),
  z.object({ error: z.string() }).strict(),
]);
/** The monitor's handshake reply. */
export type VersionResponse = z.infer<typeof VersionResponseSchema>;

/** Encodes the agent's handshake frame, exactly as the Go agent writes it. */
export function encodeVersionRange(range: VersionRange): string {
  return `{"min":${range.min},"max":${range.max}}`;
}

/** Encodes the monitor's handshake reply, exactly as the Rust monitor writes it. */
export function encodeVersionResponse(response: VersionResponse): string {
  return "version" in response
    ? `{"version":${response.version}}`
    : `{"error":${JSON.stringify(response.error)}}`;
}

/** Picks the highest version both ranges share, or explains why there is none. */
export function negotiateVersion(
  peer: VersionRange,
  ours: VersionRange = { min: MONITOR_PROTO_MIN, max: MONITOR_PROTO_MAX },
): VersionResponse {
  if (ours.min > peer.max) {
    return {
      error: `Non-overlapping bounds: other.max = ${describeVersion(peer.max)} ` +
        `was less than self.min = ${describeVersion(ours.min)}`,
    };
  }
  if (ours.max < peer.min) {
    return {
      error: `Non-overlapping bounds: self.max = ${describeVersion(ours.max)} ` +
        `was less than other.min = ${describeVersion(peer.min)}`,
    };
  }
  return { version: Math.min(ours.max, peer.max) };
}

/** Human name of a version, as the reference prints it (`v1.0`, `<invalid: zero>`). */
export function describeVersion(v: MonitorProtoVersion): string {
  if (v === 0) return "<invalid: zero>";
  if (v === MONITOR_PROTO_V1_0) return "v1.0";
  return `<unknown: ${v}>`;
}

/** Parses the agent's handshake frame; never throws. */
export function parseVersionRange(data: unknown): ParseResult<VersionRange> {
  return parseWith(data, VersionRangeSchema);
}

/** Parses the monitor's handshake reply; never throws. */
export function parseVersionResponse(data: unknown): ParseResult<VersionResponse> {
  return parseWith(data, VersionResponseSchema);
}

// ---------------------------------------------------------------------------------------------
// Payloads
// ---------------------------------------------------------------------------------------------

/** A message id: a JSON integer in `[0, 2^53)` (uint64 on the wire; JS numbers stay exact). */
export const MessageIdSchema = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/** Resources in the monitor's units: `{"cpu": <vCPUs, float>, "mem": <bytes, integer>}`. */
export const AllocationSchema = z.object({
  cpu: z.number().nonnegative(),
  mem: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
});
/** Resources in the monitor's units (vCPUs and bytes). */
export type Allocation = z.infer<typeof AllocationSchema>;

const EmptySchema = z.object({});
const ErrorPayloadSchema = z.object({ error: z.string() });

/** Converts MilliCPU and bytes to an {@linkcode Allocation} (`cpu = milliCpu / 1000`). */
export function toAllocation(milliCpu: number, memBytes: number): Allocation {
  return { cpu: milliCpu / 1000, mem: memBytes };
}

// ---------------------------------------------------------------------------------------------
// Agent → monitor: {"content": <payload>, "type": "<Type>", "id": <even id>}
// ---------------------------------------------------------------------------------------------

/** Message types the agent sends. */
export const AGENT_MESSAGE_TYPES = [
  "DownscaleRequest",
  "UpscaleNotification",
  "HealthCheck",
  "InvalidMessage",
  "InternalError",
] as const;
/** A type string the agent sends. */
export type AgentMessageType = (typeof AGENT_MESSAGE_TYPES)[number];

const agentFrame = <T extends string, C extends z.ZodType>(type: T, content: C) =>
  z.object({ type: z.literal(type), content, id: MessageIdSchema });

/** Agent asks the monitor to shrink to `target`; answered by `DownscaleResult`. */
export const DownscaleRequestSchema = agentFrame(
  "DownscaleRequest",
  z.object({ target: AllocationSchema }),
);
/** Agent tells the monitor it was given `granted`; answered by `UpscaleConfirmation`. */
export const UpscaleNotificationSchema = agentFrame(
  "UpscaleNotification",
  z.object({ granted: AllocationSchema }),
);
/** Agent-initiated health check; the monitor echoes it with the same id. */
export const AgentHealthCheckSchema = agentFrame("HealthCheck", EmptySchema);
/** Agent could not parse a monitor frame. */
export const AgentInvalidMessageSchema = agentFrame("InvalidMessage", ErrorPayloadSchema);
/** Agent failed while handling a monitor request. */
export const AgentInternalErrorSchema = agentFrame("InternalError", ErrorPayloadSchema);

/** Any agent → monitor frame (wire shape: payload under `content`). */
export const AgentMessageSchema = z.discriminatedUnion("type", [
  DownscaleRequestSchema,
  UpscaleNotificationSchema,
  AgentHealthCheckSchema,
  AgentInvalidMessageSchema,
  AgentInternalErrorSchema,
]);
/** Any agent → monitor message. */
export type AgentMessage = z.infer<typeof AgentMessageSchema>;

const AGENT_SCHEMAS: Record<AgentMessageType, z.ZodType<AgentMessage>> = {
  DownscaleRequest: DownscaleRequestSchema,
  UpscaleNotification: UpscaleNotificationSchema,
  HealthCheck: AgentHealthCheckSchema,
  InvalidMessage: AgentInvalidMessageSchema,
  InternalError: AgentInternalErrorSchema,
};

/**
 * Encodes an agent → monitor frame exactly as Go's `encoding/json` writes it: fields in the order
 * `content`, `type`, `id`, and `<`, `>`, `&`, U+2028, U+2029 escaped as `\u003c`… . (The Go
 * agent's `wsjson.Write` appends a `"\n"`; parsers on both sides accept it. It is left off here.)
 * Throws RangeError for a non-integer or negative id or mem, or a non-finite cpu (a caller bug).
 */
export function encodeAgentMessage(msg: AgentMessage): string {
  let content: string;
  switch (msg.type) {
    case "DownscaleRequest":
      content = `{"target":${encodeAllocation(msg.content.target)}}`;
      break;
    case "UpscaleNotification":
      content = `{"granted":${encodeAllocation(msg.content.granted)}}`;
      break;
    case "HealthCheck":
      content = "{}";
      break;
    case "InvalidMessage":
    case "InternalError":
      content = `{"error":${goString(msg.content.error)}}`;
      break;
  }
  return `{"content":${content},"type":${JSON.stringify(msg.type)},"id":${checkId(msg.id)}}`;
}

// ---------------------------------------------------------------------------------------------
// Monitor → agent: {"type": "<Type>", <payload fields…>, "id": <odd id or echoed id>}
// ---------------------------------------------------------------------------------------------

/** Message types the monitor sends. */
export const MONITOR_MESSAGE_TYPES = [
  "DownscaleResult",
  "UpscaleConfirmation",
  "UpscaleRequest",
  "HealthCheck",
  "InvalidMessage",
  "InternalError",
] as const;
/** A type string the monitor sends. */
export type MonitorMessageType = (typeof MONITOR_MESSAGE_TYPES)[number];

/** Reply to `DownscaleRequest`; `Ok=false` is a denial, not an error. Keys are capitalised. */
export const DownscaleResultSchema = z.object({
  type: z.literal("DownscaleResult"),
  Ok: z.boolean(),
  Status: z.string(),
  id: MessageIdSchema,
});
/** Reply to `UpscaleNotification`: the monitor applied the upscale. */
export const UpscaleConfirmationSchema = z.object({
  type: z.literal("UpscaleConfirmation"),
  id: MessageIdSchema,
});
/** Monitor-initiated urgent request for more memory (odd id); the agent sends no reply. */
export const UpscaleRequestSchema = z.object({
  type: z.literal("UpscaleRequest"),
  id: MessageIdSchema,
});
/** The monitor's echo of a health check. */
export const MonitorHealthCheckSchema = z.object({
  type: z.literal("HealthCheck"),
  id: MessageIdSchema,
});
/** Monitor could not parse an agent frame. */
export const MonitorInvalidMessageSchema = z.object({
  type: z.literal("InvalidMessage"),
  error: z.string(),
  id: MessageIdSchema,
});
/** Monitor failed while handling an agent request (same id as the request). */
export const MonitorInternalErrorSchema = z.object({
  type: z.literal("InternalError"),
  error: z.string(),
  id: MessageIdSchema,
});

/** Any monitor → agent frame (wire shape: payload fields flattened at top level). */
export const MonitorMessageSchema = z.discriminatedUnion("type", [
  DownscaleResultSchema,
  UpscaleConfirmationSchema,
  UpscaleRequestSchema,
  MonitorHealthCheckSchema,
  MonitorInvalidMessageSchema,
  MonitorInternalErrorSchema,
]);
/** Any monitor → agent message. */
export type MonitorMessage = z.infer<typeof MonitorMessageSchema>;

const MONITOR_SCHEMAS: Record<MonitorMessageType, z.ZodType<MonitorMessage>> = {
  DownscaleResult: DownscaleResultSchema,
  UpscaleConfirmation: UpscaleConfirmationSchema,
  UpscaleRequest: UpscaleRequestSchema,
  HealthCheck: MonitorHealthCheckSchema,
  InvalidMessage: MonitorInvalidMessageSchema,
  InternalError: MonitorInternalErrorSchema,
};

/**
 * Encodes a monitor → agent frame exactly as the Rust monitor (serde_json) writes it: `type`
 * first, then the payload fields (`Ok`, `Status` / `error`), then `id`. Throws RangeError for an
 * invalid id (a caller bug).
 */
export function encodeMonitorMessage(msg: MonitorMessage): string {
  const type = JSON.stringify(msg.type);
  checkId(msg.id);
  switch (msg.type) {
    case "DownscaleResult":
      return `{"type":${type},"Ok":${msg.Ok},"Status":${
        JSON.stringify(msg.Status)
      },"id":${msg.id}}`;
    case "InvalidMessage":
    case "InternalError":
      return `{"type":${type},"error":${JSON.stringify(msg.error)},"id":${msg.id}}`;
    case "UpscaleConfirmation":
    case "UpscaleRequest":
    case "HealthCheck":
      return `{"type":${type},"id":${msg.id}}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Ids
// ---------------------------------------------------------------------------------------------

/** True for ids the agent mints (even). */
export function isAgentId(id: number): boolean {
  return id % 2 === 0;
}

/** True for ids the monitor mints (odd). */
export function isMonitorId(id: number): boolean {
  return id % 2 === 1;
}

/**
 * Mints message ids for one side. The agent's counter starts at 0 and adds 2 (first id 2); the
 * monitor's starts at 1 and adds 2 before each use (first id 3), so the two never collide.
 */
export function createIdMinter(side: "agent" | "monitor"): () => number {
  let counter = side === "agent" ? 0 : 1;
  return () => {
    counter += 2;
    return counter;
  };
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/** Why a frame could not be parsed. */
export type ParseFailureKind =
  /** A binary frame; the protocol is text-only. */
  | "binary"
  /** Larger than {@linkcode MAX_FRAME_BYTES}. */
  | "too_large"
  /** Not valid UTF-8 or not valid JSON. */
  | "json"
  /** JSON, but not an object with a string `type` and an integer `id`. */
  | "envelope"
  /** A well-formed envelope whose `type` this side does not know. */
  | "unknown_type"
  /** A known `type` whose payload does not match its schema. */
  | "payload";

/** A parse failure: what kind, a human message, and whatever of the envelope could be read. */
export interface ParseFailure {
  /** Always false. */
  readonly ok: false;
  /** Which check failed. */
  readonly kind: ParseFailureKind;
  /** A message suitable for an `InvalidMessage` reply. */
  readonly error: string;
  /** The frame's `id` when it was a valid id, so a reply can carry it. */
  readonly id?: number;
  /** The frame's `type` when it was a string. */
  readonly type?: string;
}

/** The result of a parse: the value, or a failure naming what was wrong. */
export type ParseResult<T> = { readonly ok: true; readonly value: T } | ParseFailure;

/** Parses an agent → monitor frame (the monitor's input); never throws. */
export function parseAgentMessage(data: unknown): ParseResult<AgentMessage> {
  return parseFrame(data, AGENT_SCHEMAS, "content");
}

/** Parses a monitor → agent frame (the agent's input); never throws. */
export function parseMonitorMessage(data: unknown): ParseResult<MonitorMessage> {
  return parseFrame(data, MONITOR_SCHEMAS, undefined);
}

function parseFrame<T>(
  data: unknown,
  schemas: Readonly<Record<string, z.ZodType<T>>>,
  payloadKey: string | undefined,
): ParseResult<T> {
  try {
    const json = decodeJson(data);
    if (!json.ok) return json;
    const obj = json.value;
    if (typeof obj !== "object" || obj === null || Array.isArray(obj)) {
      return fail("envelope", "message is not a JSON object");
    }
    const rec = obj as Record<string, unknown>;
    const idOk = MessageIdSchema.safeParse(rec.id);
    const id = idOk.success ? idOk.data : undefined;
    const type = typeof rec.type === "string" ? rec.type : undefined;
    const where = { ...(id !== undefined ? { id } : {}), ...(type !== undefined ? { type } : {}) };
    if (type === undefined) {
      return fail("envelope", 'message has no string field "type"', where);
    }
    if (id === undefined) {
      return fail(
        "envelope",
        `${type} message has no valid "id" (a non-negative integer below 2^53)`,
        where,
      );
    }
    const schema = Object.hasOwn(schemas, type) ? schemas[type] : undefined;
    if (schema === undefined) {
      return fail(
        "unknown_type",
        `received message of unknown type: ${JSON.stringify(type)}`,
        where,
      );
    }
    if (payloadKey !== undefined && !(payloadKey in rec)) {
      return fail("payload", `error unmarshaling ${type}: missing field "${payloadKey}"`, where);
    }
    const parsed = schema.safeParse(rec);
    if (!parsed.success) {
      return fail("payload", `error unmarshaling ${type}: ${describeIssues(parsed.error)}`, where);
    }
    return { ok: true, value: parsed.data };
  } catch (e) {
    // Defensive: nothing above should throw, but the contract is "never throws".
    return fail("json", `cannot parse message: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function parseWith<T>(data: unknown, schema: z.ZodType<T>): ParseResult<T> {
  try {
    const json = decodeJson(data);
    if (!json.ok) return json;
    const parsed = schema.safeParse(json.value);
    if (!parsed.success) return fail("payload", describeIssues(parsed.error));
    return { ok: true, value: parsed.data };
  } catch (e) {
    return fail("json", `cannot parse message: ${e instanceof Error ? e.message : String(e)}`);
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Turns a websocket frame (string, ArrayBuffer, typed array) into parsed JSON, bounded in size. */
function decodeJson(data: unknown): ParseResult<unknown> {
  let text: string;
  if (typeof data === "string") {
    // UTF-8 never has fewer bytes than UTF-16 units and at most 3 per unit: count only if needed.
    const bytes = data.length > MAX_FRAME_BYTES
      ? data.length
      : data.length * 3 > MAX_FRAME_BYTES
      ? utf8ByteLength(data)
      : data.length;
    if (bytes > MAX_FRAME_BYTES) {
      return fail(
        "too_large",
        `message of at least ${bytes} bytes exceeds the limit of ${MAX_FRAME_BYTES}`,
      );
    }
    text = data;
  } else if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) {
    return fail("binary", "binary websocket frames are not supported; send JSON text frames");
  } else {
    return fail("json", `cannot parse message of JavaScript type ${typeof data}`);
  }
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (e) {
    return fail("json", `message is not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** Decodes a binary frame as UTF-8 text when a caller wants to be lenient; never throws. */
export function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return utf8.decode(bytes);
  } catch {
    return undefined;
  }
}

/** Number of UTF-8 bytes `s` encodes to. */
export function utf8ByteLength(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

function fail(
  kind: ParseFailureKind,
  error: string,
  where: { id?: number; type?: string } = {},
): ParseFailure {
  return { ok: false, kind, error, ...where };
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length > 0 ? i.path.join(".") : "<root>"}: ${i.message}`)
    .join("; ");
}

// ---------------------------------------------------------------------------------------------
// Go-compatible JSON text
// ---------------------------------------------------------------------------------------------

function encodeAllocation(a: Allocation): string {
  if (!Number.isFinite(a.cpu) || a.cpu < 0 || !Number.isSafeInteger(a.mem) || a.mem < 0) {
    throw new RangeError(
      `Cannot encode Allocation ${JSON.stringify(a)}: cpu must be a finite number >= 0 and mem ` +
        `a non-negative integer`,
    );
  }
  return `{"cpu":${goFloat(a.cpu)},"mem":${a.mem}}`;
}

/** Returns `id` when it is a valid message id; throws RangeError otherwise (a caller bug). */
function checkId(id: number): number {
  if (!Number.isSafeInteger(id) || id < 0) {
    throw new RangeError(`Cannot encode message id ${id}: must be a non-negative integer`);
  }
  return id;
}

/** Go's `encoding/json` float64 text; matches JS shortest round-trip form for every finite value. */
function goFloat(x: number): string {
  // Go writes exponents as `1e-07` then trims to `1e-7`, and uses `e+21` like JS: identical text.
  return JSON.stringify(x);
}

/** A JSON string as Go's `encoding/json` writes it (HTML-safe escaping). */
function goString(s: string): string {
  return JSON.stringify(s).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}
