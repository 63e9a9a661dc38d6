import assert from "node:assert/strict";
import fc from "fast-check";
import { jsonPatch } from "../../lib/k8s/_fake_apiserver.ts";
import { podMetadataPatch } from "./pod_metadata.ts";
import { planCpu } from "./reconcile.ts";

const key = fc.oneof(
  fc.constantFrom("a", "b/c", "x~y", "k8s.v1.cni.cncf.io/network-status", "vm.neon.tech/usage"),
  // Kubernetes label/annotation keys (prefix/name), which is what pods can carry.
  fc.stringMatching(
    /^([a-z0-9]([a-z0-9.-]{0,6}[a-z0-9])?\/)?[a-zA-Z0-9]([a-zA-Z0-9_.~-]{0,6}[a-zA-Z0-9])?$/,
  ),
);
const map = fc.dictionary(key, fc.string({ maxLength: 6 }), { maxKeys: 6, noNullPrototype: true });

Deno.test("property: applying the metadata patch yields exactly the expected maps", () => {
  fc.assert(fc.property(
    fc.option(map, { nil: undefined }),
    fc.option(map, { nil: undefined }),
    map,
    map,
    (labels, annotations, wantLabels, wantAnnotations) => {
      const pod = {
        metadata: {
          name: "p",
          ...(labels ? { labels } : {}),
          ...(annotations ? { annotations } : {}),
        },
      };
      const ops = podMetadataPatch(pod.metadata, wantLabels, wantAnnotations);
      const out = jsonPatch(pod, ops) as {
        metadata: { labels?: object; annotations?: Record<string, string> };
      };
      assert.deepEqual(out.metadata.labels ?? {}, wantLabels);
      // Multus annotations the pod had are kept even when not expected.
      const kept = Object.fromEntries(
        Object.entries(annotations ?? {}).filter(([k]) =>
          k === "k8s.v1.cni.cncf.io/network-status" && !(k in wantAnnotations)
        ),
      );
      assert.deepEqual(out.metadata.annotations ?? {}, { ...kept, ...wantAnnotations });
      // Once applied, nothing is left to do.
      assert.deepEqual(
        podMetadataPatch(out.metadata as typeof pod.metadata, wantLabels, wantAnnotations),
        [],
      );
    },
  ));
});

Deno.test("property: a QMP CPU step always moves toward the target and stops there", () => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 64_000 }),
    fc.integer({ min: 1, max: 64 }),
    fc.integer({ min: 0, max: 64_000 }),
    (useMilliCpu, pluggedCpus, cgroupMilliCpu) => {
      const want = Math.ceil(useMilliCpu / 1000);
      const step = planCpu(useMilliCpu, "QmpScaling", {
        cgroupMilliCpu,
        pluggedCpus,
        memoryBytes: 0,
      });
      if (want > pluggedCpus) assert.deepEqual(step.actions, [{ type: "plugCpu" }]);
      else if (want < pluggedCpus) assert.deepEqual(step.actions, [{ type: "unplugCpu" }]);
      else if (cgroupMilliCpu !== useMilliCpu) {
        assert.deepEqual(step.actions, [{ type: "runnerCpuChange", milliCpu: useMilliCpu }]);
      } else assert.deepEqual(step, { actions: [], done: true });
      assert.equal(step.done, step.actions.length === 0);
    },
  ));
});
