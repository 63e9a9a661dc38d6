import assert from "node:assert/strict";
import fc from "fast-check";
import {
  buildBinding,
  ExtenderArgsSchema,
  ExtenderBindingArgsSchema,
  type ExtenderFilterResult,
  ExtenderFilterResultSchema,
  HostPriorityListSchema,
} from "./extender.ts";

Deno.test("ExtenderArgs: nodeCacheCapable body with PascalCase keys parses", () => {
  const body = {
    Pod: {
      metadata: { name: "p", namespace: "n", uid: "u1", annotations: { a: "b" } },
      spec: {
        schedulerName: "autoscale-scheduler",
        containers: [{ name: "c", resources: { requests: { cpu: "250m", memory: "1Gi" } } }],
      },
      status: { phase: "Pending" },
    },
    Nodes: null,
    NodeNames: ["n1", "n2"],
  };
  const r = ExtenderArgsSchema.safeParse(body);
  assert.ok(r.success);
  assert.deepEqual(r.data.NodeNames, ["n1", "n2"]);
  assert.equal(r.data.Pod.metadata.name, "p");
});

Deno.test("ExtenderFilterResult and HostPriorityList: exact JSON", () => {
  const res: ExtenderFilterResult = {
    Nodes: null,
    NodeNames: ["a"],
    FailedNodes: { b: "why" },
    FailedAndUnresolvableNodes: {},
    Error: "",
  };
  const json = JSON.stringify(res);
  assert.equal(
    json,
    `{"Nodes":null,"NodeNames":["a"],"FailedNodes":{"b":"why"},"FailedAndUnresolvableNodes":{},"Error":""}`,
  );
  assert.ok(ExtenderFilterResultSchema.safeParse(JSON.parse(json)).success);
  assert.equal(JSON.stringify([{ Host: "myhost", Score: 1 }]), `[{"Host":"myhost","Score":1}]`);
  assert.ok(HostPriorityListSchema.safeParse([{ Host: "myhost", Score: 1 }]).success);
});

Deno.test("ExtenderBindingArgs parses; Binding body is a core/v1 Binding", () => {
  const a = ExtenderBindingArgsSchema.parse(
    JSON.parse(`{"PodName":"p","PodNamespace":"n","PodUID":"u","Node":"x"}`),
  );
  assert.deepEqual(buildBinding(a), {
    apiVersion: "v1",
    kind: "Binding",
    metadata: { name: "p", namespace: "n", uid: "u" },
    target: { apiVersion: "v1", kind: "Node", name: "x" },
  });
});

Deno.test("property: extender parsers never throw", () => {
  fc.assert(
    fc.property(fc.jsonValue(), (v) => {
      ExtenderArgsSchema.safeParse(v);
      ExtenderBindingArgsSchema.safeParse(v);
      ExtenderArgsSchema.safeParse({ Pod: v, NodeNames: ["a"] });
    }),
    { numRuns: 2000 },
  );
});
