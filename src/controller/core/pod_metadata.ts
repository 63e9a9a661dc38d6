/**
 * The VM → runner pod metadata sync of reference §1.2: JSON-patch operations that make the pod's
 * labels and annotations exactly the expected ones (`add` replaces existing keys, `remove` drops
 * unexpected ones), leaving Multus' annotations alone.
 * Pure: no I/O.
 * @module
 */
import { POD_SYNC_IGNORED_ANNOTATIONS } from "../../api/annotations.ts";

/** A JSON-patch operation (structurally the same as the k8s client's). */
export type PatchOp =
  | { readonly op: "add"; readonly path: string; readonly value: unknown }
  | { readonly op: "remove"; readonly path: string };

function escape(segment: string): string {
  return segment.replaceAll("~", "~0").replaceAll("/", "~1");
}

function syncMap(
  field: "labels" | "annotations",
  current: Readonly<Record<string, string>> | undefined,
  expected: Readonly<Record<string, string>>,
  ignored: readonly string[],
): PatchOp[] {
  const ops: PatchOp[] = [];
  if (current === undefined) {
    return Object.keys(expected).length === 0
      ? []
      : [{ op: "add", path: `/metadata/${field}`, value: { ...expected } }];
  }
  for (const key of Object.keys(expected).sort()) {
    if (current[key] !== expected[key]) {
      ops.push({ op: "add", path: `/metadata/${field}/${escape(key)}`, value: expected[key] });
    }
  }
  for (const key of Object.keys(current).sort()) {
    if (key in expected || ignored.includes(key)) continue;
    ops.push({ op: "remove", path: `/metadata/${field}/${escape(key)}` });
  }
  return ops;
}

/** Operations turning the pod's labels/annotations into the expected ones; `[]` when in sync. */
export function podMetadataPatch(
  pod: {
    readonly labels?: Readonly<Record<string, string>> | undefined;
    readonly annotations?: Readonly<Record<string, string>> | undefined;
  },
  expectedLabels: Readonly<Record<string, string>>,
  expectedAnnotations: Readonly<Record<string, string>>,
): PatchOp[] {
  return [
    ...syncMap("labels", pod.labels, expectedLabels, []),
    ...syncMap("annotations", pod.annotations, expectedAnnotations, POD_SYNC_IGNORED_ANNOTATIONS),
  ];
}
