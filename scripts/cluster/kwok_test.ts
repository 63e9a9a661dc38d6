/**
 * Tests for the KWOK fake-node documents: Node objects are annotated, tainted and sized; the
 * stage file holds the node-ready, pod-running and pod-delete stages with the selectors KWOK needs.
 * @module
 */
import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { fakeNodeObject, kwokCmd, kwokStages } from "./kwok.ts";

Deno.test("fake node objects are annotated for KWOK, tainted and sized", () => {
  const n = fakeNodeObject(3, "8", "32Gi") as {
    metadata: { name: string; annotations: Record<string, string> };
    spec: { podCIDR: string; taints: { key: string; effect: string }[] };
    status: { allocatable: Record<string, string> };
  };
  assert.equal(n.metadata.name, "fake-3");
  assert.equal(n.metadata.annotations["kwok.x-k8s.io/node"], "fake");
  assert.equal(n.spec.podCIDR, "10.214.103.0/24");
  assert.deepEqual(n.spec.taints.map((t) => [t.key, t.effect]), [[
    "kwok.x-k8s.io/node",
    "NoSchedule",
  ]]);
  assert.deepEqual(n.status.allocatable, { cpu: "8", memory: "32Gi", pods: "110" });
});

Deno.test("stage file parses as three Stage documents", () => {
  const docs = parseAllDocuments(kwokStages()).map((d) => d.toJSON()) as {
    kind: string;
    metadata: { name: string };
    spec: { resourceRef: { kind: string }; next: { statusTemplate?: string; delete?: boolean } };
  }[];
  assert.deepEqual(docs.map((d) => d.kind), ["Stage", "Stage", "Stage"]);
  assert.deepEqual(docs.map((d) => d.spec.resourceRef.kind), ["Node", "Pod", "Pod"]);
  assert.match(docs[0]!.spec.next.statusTemplate ?? "", /phase: Running/);
  assert.match(docs[1]!.spec.next.statusTemplate ?? "", /PodIPWith/);
  assert.equal(docs[2]!.spec.next.delete, true);
  assert.ok(kwokCmd("/b", "/k", "/c").includes("--manage-all-nodes=false"));
});
