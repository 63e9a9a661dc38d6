/**
 * Distils a Pod from the API into the `PodView` the core decides on (phase, readiness,
 * deletion time, labels, annotations, owner count, runner requests). Reads only.
 * @module
 */
import { RUNNER_CONTAINER_NAME } from "../../api/annotations.ts";
import { parseBytes, parseMilliCpu } from "../../api/quantity.ts";
import type { Pod } from "../../lib/k8s/core_types.ts";
import type { PodView, RunnerSize } from "../core/runner_pod.ts";

/** The core's view of a runner pod. */
export function podView(pod: Pod): PodView {
  const runner = pod.spec.containers.find((c) => c.name === RUNNER_CONTAINER_NAME);
  const cs = pod.status?.containerStatuses ?? [];
  const runnerStatus = cs.find((c) => c.name === RUNNER_CONTAINER_NAME);
  const del = pod.metadata.deletionTimestamp;
  const req = runner?.resources?.requests;
  let runnerRequests: RunnerSize | undefined;
  if (req?.cpu !== undefined && req.memory !== undefined) {
    const milliCpu = parseMilliCpu(req.cpu);
    const memBytes = parseBytes(req.memory);
    if (milliCpu !== undefined && memBytes !== undefined) runnerRequests = { milliCpu, memBytes };
  }
  return {
    name: pod.metadata.name,
    phase: pod.status?.phase ?? "",
    deletionTimestampMs: del ? Date.parse(del) : undefined,
    podIP: pod.status?.podIP,
    nodeName: pod.spec.nodeName,
    hasContainerStatuses: cs.length > 0,
    runnerReady: runnerStatus?.ready === true,
    labels: pod.metadata.labels,
    annotations: pod.metadata.annotations,
    ownerReferenceCount: pod.metadata.ownerReferences?.length ?? 0,
    ownerNames: pod.metadata.ownerReferences?.map((r) => r.name),
    runnerRequests,
  };
}
