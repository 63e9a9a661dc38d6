/**
 * The agent → scheduler permit protocol (reference §1.1): `AgentRequest`, `PluginResponse` and the
 * `PluginProtoVersion` enum, with zod parsers and encoders that produce the exact wire JSON
 * (protocol v5.0 = `protoVersion: 7`). Shared by the scheduler (server) and the agent (client).
 * Contracts only: no I/O; parsers never throw and report the offending path.
 * @module
 */
import { z } from "zod";
import { ParseError } from "../lib/errors.ts";
import {
  encodeResources,
  parseBytes,
  parseMilliCpu,
  type Resources,
  ResourcesSchema,
  type ResourcesWire,
} from "./quantity.ts";

/** PluginProtoVersion values (uint, iota+1 in the reference). */
export const PluginProtoVersion = {
  /** Initial version. */
  V1_0: 1,
  /** `metrics` may be null. */
  V1_1: 2,
  /** Fractional CPU. */
  V2_0: 3,
  /** Added `AgentRequest.lastPermit`. */
  V2_1: 4,
  /** Removed `PluginResponse.computeUnit`. */
  V3_0: 5,
  /** Memory in bytes; added `AgentRequest.computeUnit`. */
  V4_0: 6,
  /** Removed metrics `loadAvg5M` and `memoryUsageBytes`. */
  V5_0: 7,
} as const;

/** A protocol version number as sent on the wire. */
export type PluginProtoVersion = number;

/** The only version the scheduler accepts and the agent sends (min = max = v5.0). */
export const CURRENT_PROTO_VERSION: PluginProtoVersion = PluginProtoVersion.V5_0;

const VERSION_NAMES: Readonly<Record<number, string>> = {
  1: "v1.0",
  2: "v1.1",
  3: "v2.0",
  4: "v2.1",
  5: "v3.0",
  6: "v4.0",
  7: "v5.0",
};

/** The string form of a protocol version: `v1.0`…`v5.0`, `<invalid: zero>` for 0. */
export function protoVersionString(v: PluginProtoVersion): string {
  if (v === 0) return "<invalid: zero>";
  return VERSION_NAMES[v] ?? `<unknown: ${v}>`;
}

/** Parses a string form (`"v5.0"`) back to its number, or `undefined`. */
export function parseProtoVersionString(s: string): PluginProtoVersion | undefined {
  for (const [num, name] of Object.entries(VERSION_NAMES)) if (name === s) return Number(num);
  return undefined;
}

/** `util.NamespacedName`: JSON keys `namespace`, `name`. */
export const NamespacedNameSchema = z.object({
  namespace: z.string(),
  name: z.string(),
});
/** A namespace and a name. */
export type NamespacedName = z.infer<typeof NamespacedNameSchema>;

/** `api.Metrics`; v5.0 agents send only `loadAvg1M`; older optional fields are accepted. */
export const MetricsSchema = z.object({
  loadAvg1M: z.number(),
  loadAvg5M: z.number().optional(),
  memoryUsageBytes: z.number().optional(),
});
/** Metrics sent with a request. */
export type Metrics = z.infer<typeof MetricsSchema>;

/** The body of `POST :10299/`; `lastPermit` and `metrics` may be null or absent. */
export const AgentRequestSchema = z.object({
  protoVersion: z.number().int().nonnegative(),
  pod: NamespacedNameSchema,
  computeUnit: ResourcesSchema,
  resources: ResourcesSchema,
  lastPermit: ResourcesSchema.nullable().default(null),
  metrics: MetricsSchema.nullable().default(null),
});
/** A decoded agent request (CPU in MilliCPU, memory in bytes). */
export type AgentRequest = z.infer<typeof AgentRequestSchema>;

/** `MigrateResponse`: an empty object meaning "your VM will be migrated". */
export const MigrateResponseSchema = z.object({});

/** The scheduler's answer; `migrate` is omitted when absent. */
export const PluginResponseSchema = z.object({
  permit: ResourcesSchema,
  migrate: MigrateResponseSchema.nullable().optional(),
});
/** A decoded plugin response. */
export interface PluginResponse {
  /** Resources the agent may now use. */
  readonly permit: Resources;
  /** Present when the VM is about to be migrated. */
  readonly migrate?: Record<string, never> | null;
}

/** Wire form of an agent request, keys in the reference's order. */
export interface AgentRequestWire {
  /** Protocol version number. */
  protoVersion: number;
  /** The VM's runner pod. */
  pod: NamespacedName;
  /** Compute unit. */
  computeUnit: ResourcesWire;
  /** Desired resources. */
  resources: ResourcesWire;
  /** Last permit received, or null. */
  lastPermit: ResourcesWire | null;
  /** Metrics, or null. */
  metrics: Metrics | null;
}

/** Wire form of a plugin response. */
export interface PluginResponseWire {
  /** The permit. */
  permit: ResourcesWire;
  /** Present (as `{}`) only when the VM will be migrated. */
  migrate?: Record<string, never>;
}

/** Encodes an agent request exactly as the reference agent does. */
export function encodeAgentRequest(req: AgentRequest): AgentRequestWire {
  return {
    protoVersion: req.protoVersion,
    pod: { namespace: req.pod.namespace, name: req.pod.name },
    computeUnit: encodeResources(req.computeUnit),
    resources: encodeResources(req.resources),
    lastPermit: req.lastPermit === null ? null : encodeResources(req.lastPermit),
    metrics: req.metrics === null ? null : encodeMetrics(req.metrics),
  };
}

function encodeMetrics(m: Metrics): Metrics {
  const out: Metrics = { loadAvg1M: m.loadAvg1M };
  if (m.loadAvg5M !== undefined) out.loadAvg5M = m.loadAvg5M;
  if (m.memoryUsageBytes !== undefined) out.memoryUsageBytes = m.memoryUsageBytes;
  return out;
}

/** Encodes a plugin response; `migrate` appears (as `{}`) only when set. */
export function encodePluginResponse(resp: PluginResponse): PluginResponseWire {
  const out: PluginResponseWire = { permit: encodeResources(resp.permit) };
  if (resp.migrate) out.migrate = {};
  return out;
}

/** A parse outcome: a value or a typed error; never a throw. */
export type ParseResult<T> = { ok: true; value: T } | { ok: false; error: ParseError };

/** Runs a zod schema and turns its issues into a ParseError naming the paths. */
export function safeParseWith<T>(
  schema: z.ZodType<T>,
  what: string,
  input: unknown,
): ParseResult<T> {
  const r = schema.safeParse(input);
  if (r.success) return { ok: true, value: r.data };
  const paths = r.error.issues.map((i) => i.path.map(String).join(".") || "(root)");
  const detail = r.error.issues
    .map((i) => `${i.path.map(String).join(".") || "(root)"}: ${i.message}`)
    .join("; ");
  return { ok: false, error: new ParseError(`Cannot parse ${what}: ${detail}`, { paths }) };
}

/** Parses a decoded JSON value as an AgentRequest. */
export function parseAgentRequest(input: unknown): ParseResult<AgentRequest> {
  // Hot path (thousands of requests per second): a hand check of the usual shape, falling back
  // to the zod schema — the reference of what is valid — for anything else or any error.
  const fast = fastAgentRequest(input);
  if (fast !== undefined) return { ok: true, value: fast };
  return safeParseWith(AgentRequestSchema, "AgentRequest", input);
}

const QUANTITY_CACHE_MAX = 4096;
const cpuCache = new Map<string | number, number | undefined>();
const memCache = new Map<string | number, number | undefined>();

function cached(
  cache: Map<string | number, number | undefined>,
  v: string | number,
  parse: (v: string | number) => number | undefined,
): number | undefined {
  if (cache.has(v)) return cache.get(v);
  const r = parse(v);
  if (cache.size < QUANTITY_CACHE_MAX) cache.set(v, r);
  return r;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function fastResources(v: unknown): Resources | undefined {
  if (!isRecord(v)) return undefined;
  const c = v.vCPUs;
  const m = v.mem;
  if (
    (typeof c !== "string" && typeof c !== "number") ||
    (typeof m !== "string" && typeof m !== "number")
  ) {
    return undefined;
  }
  const vCPUs = cached(cpuCache, c, parseMilliCpu);
  const mem = cached(memCache, m, parseBytes);
  if (vCPUs === undefined || mem === undefined || vCPUs < 0 || mem < 0) return undefined;
  return { vCPUs, mem };
}

function fastAgentRequest(v: unknown): AgentRequest | undefined {
  if (!isRecord(v)) return undefined;
  const pv = v.protoVersion;
  if (typeof pv !== "number" || !Number.isSafeInteger(pv) || pv < 0) return undefined;
  const pod = v.pod;
  if (!isRecord(pod) || typeof pod.namespace !== "string" || typeof pod.name !== "string") {
    return undefined;
  }
  const computeUnit = fastResources(v.computeUnit);
  const resources = fastResources(v.resources);
  if (computeUnit === undefined || resources === undefined) return undefined;
  let lastPermit: Resources | null = null;
  if (v.lastPermit !== null && v.lastPermit !== undefined) {
    const lp = fastResources(v.lastPermit);
    if (lp === undefined) return undefined;
    lastPermit = lp;
  }
  let metrics: Metrics | null = null;
  if (v.metrics !== null && v.metrics !== undefined) {
    const mt = v.metrics;
    if (!isRecord(mt) || typeof mt.loadAvg1M !== "number" || !Number.isFinite(mt.loadAvg1M)) {
      return undefined;
    }
    if (mt.loadAvg5M !== undefined || mt.memoryUsageBytes !== undefined) return undefined;
    metrics = { loadAvg1M: mt.loadAvg1M };
  }
  return {
    protoVersion: pv,
    pod: { namespace: pod.namespace, name: pod.name },
    computeUnit,
    resources,
    lastPermit,
    metrics,
  };
}

/** Parses a decoded JSON value as a PluginResponse. */
export function parsePluginResponse(input: unknown): ParseResult<PluginResponse> {
  const r = safeParseWith(PluginResponseSchema, "PluginResponse", input);
  if (!r.ok) return r;
  const value: PluginResponse = r.value.migrate
    ? { permit: r.value.permit, migrate: {} }
    : { permit: r.value.permit };
  return { ok: true, value };
}

/**
 * Checks the version and compute unit the way the reference plugin does; returns the 400 message
 * or `undefined` when the request is acceptable.
 */
export function validateAgentRequest(req: AgentRequest): string | undefined {
  if (req.protoVersion === 0) return "invalid protocol version";
  if (req.protoVersion !== CURRENT_PROTO_VERSION) {
    return `protocol version mismatch: need ${protoVersionString(CURRENT_PROTO_VERSION)} but got ${
      protoVersionString(req.protoVersion)
    }`;
  }
  if (req.computeUnit.vCPUs === 0 || req.computeUnit.mem === 0) {
    return "computeUnit fields must be non-zero";
  }
  return undefined;
}
