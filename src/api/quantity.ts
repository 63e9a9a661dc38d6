/**
 * Kubernetes quantities, and the two integer units the wire protocols use: MilliCPU and bytes.
 * Decoding accepts every Kubernetes quantity form (`"250m"`, `0.25`, `"1Gi"`, `"1e3"`, `"1.5G"`);
 * encoding is exactly the reference's (§1.1): whole CPUs as JSON integers, else `"<n>m"`; bytes
 * under 1024 as JSON integers, else a binary-SI string such as `"1536Mi"`.
 * Pure: no I/O.
 * @module
 */
import { z } from "zod";

/** Integer thousandths of a vCPU (`250` = 0.25 vCPU). */
export type MilliCpu = number;
/** Integer bytes. */
export type Bytes = number;

const BINARY: Record<string, bigint> = {
  Ki: 1n << 10n,
  Mi: 1n << 20n,
  Gi: 1n << 30n,
  Ti: 1n << 40n,
  Pi: 1n << 50n,
  Ei: 1n << 60n,
};
const DECIMAL_EXP: Record<string, number> = {
  n: -9,
  u: -6,
  m: -3,
  "": 0,
  k: 3,
  M: 6,
  G: 9,
  T: 12,
  P: 15,
  E: 18,
};

const QUANTITY_RE =
  /^([+-]?)(\d+(?:\.\d*)?|\.\d+)(?:(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])|[eE]([+-]?\d+))?$/;

/** An exact rational `num / den` with `den > 0`, the value of a parsed quantity. */
export interface Rational {
  /** Numerator. */
  readonly num: bigint;
  /** Denominator, positive. */
  readonly den: bigint;
}

/** Parses a Kubernetes quantity (string or JSON number) into an exact rational, or `undefined`. */
export function parseQuantity(input: string | number): Rational | undefined {
  let s: string;
  if (typeof input === "number") {
    if (!Number.isFinite(input)) return undefined;
    // Numbers arrive from JSON; their shortest round-trip text is the value written.
    s = numberToPlainString(input);
  } else {
    s = input.trim();
  }
  if (s.length === 0 || s.length > 64) return undefined;
  const m = QUANTITY_RE.exec(s);
  if (!m) return undefined;
  const [, sign, digits = "", suffix, exp] = m;
  const [intPart = "", fracPart = ""] = digits.split(".");
  let num = BigInt((intPart || "0") + fracPart);
  let den = 10n ** BigInt(fracPart.length);
  if (sign === "-") num = -num;
  if (suffix !== undefined && suffix in BINARY) {
    num *= BINARY[suffix]!;
  } else {
    let e10 = 0;
    if (suffix !== undefined) e10 = DECIMAL_EXP[suffix]!;
    else if (exp !== undefined) {
      e10 = Number(exp);
      if (Math.abs(e10) > 40) return undefined;
    }
    if (e10 >= 0) num *= 10n ** BigInt(e10);
    else den *= 10n ** BigInt(-e10);
  }
  return { num, den };
}

function numberToPlainString(n: number): string {
  const s = String(n);
  if (!/e/i.test(s)) return s;
  // Exponent form is a valid quantity too ("1e+21" is not: normalise the plus sign).
  return s.replace("e+", "e");
}

function ceilDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return (a % b !== 0n && (a > 0n) === (b > 0n)) ? q + 1n : q;
}

/** Value of a quantity in milli-units, rounded up as Kubernetes' `MilliValue()` does. */
export function quantityToMilli(q: Rational): bigint {
  return ceilDiv(q.num * 1000n, q.den);
}

/** Value of a quantity in whole units, rounded up as Kubernetes' `Value()` does. */
export function quantityToInteger(q: Rational): bigint {
  return ceilDiv(q.num, q.den);
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function toSafe(v: bigint): number | undefined {
  return v >= -MAX_SAFE && v <= MAX_SAFE ? Number(v) : undefined;
}

/** Parses a CPU quantity into MilliCPU, or `undefined` when it is not a quantity. */
export function parseMilliCpu(input: string | number): MilliCpu | undefined {
  const q = parseQuantity(input);
  return q === undefined ? undefined : toSafe(quantityToMilli(q));
}

/** Parses a byte quantity into bytes, or `undefined` when it is not a quantity. */
export function parseBytes(input: string | number): Bytes | undefined {
  const q = parseQuantity(input);
  return q === undefined ? undefined : toSafe(quantityToInteger(q));
}

/** Encodes MilliCPU as on the wire: whole CPUs as a JSON integer, else `"<n>m"`. */
export function encodeMilliCpu(m: MilliCpu): number | string {
  return m % 1000 === 0 ? m / 1000 : `${m}m`;
}

/** Formats bytes as a binary-SI quantity string with the largest exact suffix (`"1536Mi"`). */
export function formatBinarySi(b: Bytes): string {
  const suffixes = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
  if (b === 0) return "0";
  let v = BigInt(b);
  let i = 0;
  while (i < suffixes.length - 1 && v % 1024n === 0n && (v >= 1024n || v <= -1024n)) {
    v /= 1024n;
    i++;
  }
  return `${v}${suffixes[i]}`;
}

/** Encodes bytes as on the wire: under 1024 a JSON integer, else a binary-SI string. */
export function encodeBytes(b: Bytes): number | string {
  return b < 1024 && b > -1024 ? b : formatBinarySi(b);
}

/** Formats MilliCPU as a Kubernetes quantity string (`"250m"`, `"2"`). */
export function formatMilliCpu(m: MilliCpu): string {
  return m % 1000 === 0 ? String(m / 1000) : `${m}m`;
}

const QuantityInput = z.union([z.string(), z.number()]);

/** A CPU amount: any quantity in, MilliCPU (integer, ≥ 0) out. */
export const MilliCpuSchema: z.ZodType<MilliCpu, string | number> = QuantityInput.transform(
  (v, ctx) => {
    const m = parseMilliCpu(v);
    if (m === undefined || m < 0) {
      ctx.addIssue({ code: "custom", message: `not a non-negative CPU quantity: ${String(v)}` });
      return z.NEVER;
    }
    return m;
  },
);

/** A memory amount: any quantity in, bytes (integer, ≥ 0) out. */
export const BytesSchema: z.ZodType<Bytes, string | number> = QuantityInput.transform(
  (v, ctx) => {
    const b = parseBytes(v);
    if (b === undefined || b < 0) {
      ctx.addIssue({ code: "custom", message: `not a non-negative byte quantity: ${String(v)}` });
      return z.NEVER;
    }
    return b;
  },
);

/** A quantity string in canonical wire form, accepted as any quantity (string or number). */
export const QuantityStringSchema: z.ZodType<string, string | number> = QuantityInput.refine(
  (v) => parseQuantity(v) !== undefined,
  { message: "not a Kubernetes quantity" },
).transform((v) => String(v));

/** `{vCPUs, mem}`: the Resources type of the agent ↔ scheduler protocol and annotations. */
export const ResourcesSchema = z.object({
  vCPUs: MilliCpuSchema,
  mem: BytesSchema,
});
/** Decoded Resources: MilliCPU and bytes. */
export type Resources = z.infer<typeof ResourcesSchema>;

/** Resources as they appear on the wire. */
export interface ResourcesWire {
  /** CPU, integer or `"<n>m"`. */
  vCPUs: number | string;
  /** Memory, integer under 1024 or binary-SI string. */
  mem: number | string;
}

/** Encodes Resources exactly as the reference does. */
export function encodeResources(r: Resources): ResourcesWire {
  return { vCPUs: encodeMilliCpu(r.vCPUs), mem: encodeBytes(r.mem) };
}

/** Byte constants. */
export const KiB = 1024;
/** One mebibyte. */
export const MiB = 1024 * KiB;
/** One gibibyte. */
export const GiB = 1024 * MiB;
