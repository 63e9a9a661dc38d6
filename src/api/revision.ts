/**
 * Revisions (§2.4): the change-tracking token the agent writes to `spec.targetRevision` and the
 * controller copies to `status.currentRevision` once a change is fully applied.
 * Wire: `Revision = {"value": int64, "flags": uint64}`,
 * `RevisionWithTime = {"revision": Revision, "updatedAt": RFC3339}`.
 * Pure: no I/O, no clock (`nowMs` is a parameter).
 * @module
 */
import { z } from "zod";
import { crd } from "./virtualmachine_crd_meta.ts";

/** Flag bit: the change increased some resource. */
export const REVISION_FLAG_UPSCALE = 1;
/** Flag bit: the change decreased some resource. */
export const REVISION_FLAG_DOWNSCALE = 2;

/** `{value, flags}`; both non-negative safe integers here (the Go types are int64/uint64). */
export const RevisionSchema = z.object({
  value: crd(z.number().int(), { format: "int64" }),
  flags: crd(z.number().int().min(0), { format: "int64" }),
});
/** A revision. */
export type Revision = z.infer<typeof RevisionSchema>;

/** `{revision, updatedAt}`; `updatedAt` is kept as the RFC 3339 text so it round-trips exactly. */
export const RevisionWithTimeSchema = z.object({
  revision: RevisionSchema,
  updatedAt: z.iso.datetime({ offset: true }),
});
/** A revision with the time it was produced. */
export type RevisionWithTime = z.infer<typeof RevisionWithTimeSchema>;

/** The zero revision (what an absent revision means). */
export const ZERO_REVISION: Revision = Object.freeze({ value: 0, flags: 0 });

/** Formats epoch milliseconds as Kubernetes writes `metav1.Time`: UTC, whole seconds, `Z`. */
export function formatK8sTime(nowMs: number): string {
  return new Date(Math.floor(nowMs / 1000) * 1000).toISOString().replace(".000Z", "Z");
}

/** Parses an RFC 3339 time as written by Kubernetes into epoch milliseconds (NaN if invalid). */
export function parseK8sTimeMs(text: string): number {
  return Date.parse(text);
}

/** The revision after `r`, carrying `flags` (the agent's `Next`). */
export function nextRevision(r: Revision, flags: number): Revision {
  return { value: r.value + 1, flags };
}

/** Pairs a revision with `nowMs` for `spec.targetRevision` / `status.currentRevision`. */
export function revisionWithTime(r: Revision, nowMs: number): RevisionWithTime {
  return { revision: { value: r.value, flags: r.flags }, updatedAt: formatK8sTime(nowMs) };
}

/** True when both the value and the flags are equal (how the controller compares revisions). */
export function revisionEquals(a: Revision, b: Revision): boolean {
  return a.value === b.value && a.flags === b.flags;
}

/** Wire JSON of a revision, in the reference's field order. */
export function encodeRevision(r: Revision): { value: number; flags: number } {
  return { value: r.value, flags: r.flags };
}

/** Wire JSON of a revision with time, in the reference's field order. */
export function encodeRevisionWithTime(
  r: RevisionWithTime,
): { revision: { value: number; flags: number }; updatedAt: string } {
  return { revision: encodeRevision(r.revision), updatedAt: r.updatedAt };
}
