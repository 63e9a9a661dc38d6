/**
 * The kube-scheduler extender endpoints (`POST <prefix>/filter`, `/prioritize`, `/bind`), served
 * next to the permit API on port 10299 under `/scheduler/` (the KubeSchedulerConfiguration in
 * deploy/scheduler points there). Filter explains every rejected node in `FailedNodes`, so
 * `kubectl describe pod` shows our reason; bind records the placement in the accounting before it
 * creates the Binding and forgets it again when that fails.
 * @module
 */
import {
  ExtenderArgsSchema,
  ExtenderBindingArgsSchema,
  type ExtenderBindingResult,
  type ExtenderFilterResult,
  type HostPriorityList,
  MAX_EXTENDER_PRIORITY,
} from "../../api/extender.ts";
import type { ScoringConfig } from "../../api/scheduler_config.ts";
import { errorChainMessage } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import type { PodInfo } from "../core/objects.ts";
import { filterNodes, prioritize, releaseBind, reserveForBind } from "../core/placement.ts";
import { type ClusterState, key } from "../core/state.ts";
import type { ClusterSync } from "./cluster_sync.ts";
import type { SchedulerKube } from "./kube.ts";
import type { SchedulerMetrics } from "./metrics.ts";
import { textError } from "./permit_handler.ts";

/** Path prefix of the extender verbs. */
export const EXTENDER_PREFIX = "/scheduler";

/** Options for {@linkcode createExtenderHandler}. */
export interface ExtenderHandlerOptions {
  /** The accounting state. */
  state: ClusterState;
  /** Parses pods the way the watch does. */
  sync: ClusterSync;
  /** API calls (binding, pod reads). */
  kube: SchedulerKube;
  /** Scoring settings. */
  scoring: ScoringConfig;
  /** Random source in [0, 1) for score randomisation. */
  random: () => number;
  /** False while not the leader: every call fails so the scheduler retries. */
  isLeader: () => boolean;
  /** Logger. */
  logger: Logger;
  /** Metrics, when exported. */
  metrics?: SchedulerMetrics;
}

function json(body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status: 200,
    headers: { "content-type": "application/json" },
  });
}

function filterResult(
  names: string[] | null,
  failed: Record<string, string>,
  unresolvable: Record<string, string>,
  error = "",
): ExtenderFilterResult {
  return {
    Nodes: null,
    NodeNames: names,
    FailedNodes: failed,
    FailedAndUnresolvableNodes: unresolvable,
    Error: error,
  };
}

/** Creates the extender handler; answers 404 outside `/scheduler/{filter,prioritize,bind}`. */
export function createExtenderHandler(
  o: ExtenderHandlerOptions,
): (req: Request) => Promise<Response> {
  const notReady = (): string | undefined =>
    !o.isLeader()
      ? "autoscale-scheduler: this replica is not the leader"
      : !o.state.synced
      ? "autoscale-scheduler: state not synced yet"
      : undefined;

  const call = (method: string, ns: string) => {
    o.metrics?.extensionCalls.inc({
      method,
      desired_availability_zone: "",
      ignored_namespace: String(o.state.config.ignoredNamespaces.has(ns)),
    });
  };
  const fail = (method: string, ns: string, status: string) => {
    o.metrics?.extensionCallFails.inc({
      method,
      desired_availability_zone: "",
      ignored_namespace: String(o.state.config.ignoredNamespaces.has(ns)),
      status,
    });
  };

  const filter = (body: unknown): Response => {
    const args = ExtenderArgsSchema.safeParse(body);
    if (!args.success) return textError(400, "bad JSON");
    const names = args.data.NodeNames ??
      (args.data.Nodes?.items ?? []).map((n) => n.metadata.name);
    const ns = args.data.Pod.metadata.namespace ?? "default";
    call("Filter", ns);
    const problem = notReady();
    if (problem !== undefined) {
      fail("Filter", ns, "Error");
      return json(filterResult(null, {}, {}, problem));
    }
    const info = o.sync.podInfo(args.data.Pod);
    if (info === undefined) {
      fail("Filter", ns, "UnschedulableAndUnresolvable");
      const reason = "autoscale-scheduler: cannot read the pod's resources";
      return json(filterResult([], {}, Object.fromEntries(names.map((n) => [n, reason]))));
    }
    const { fit, failed } = filterNodes(o.state, info, names);
    if (fit.length === 0) fail("Filter", ns, "Unschedulable");
    return json(filterResult(fit, failed, {}));
  };

  const prioritizeCall = (body: unknown): Response => {
    const args = ExtenderArgsSchema.safeParse(body);
    if (!args.success) return textError(400, "bad JSON");
    const names = args.data.NodeNames ??
      (args.data.Nodes?.items ?? []).map((n) => n.metadata.name);
    call("Score", args.data.Pod.metadata.namespace ?? "default");
    const info = o.sync.podInfo(args.data.Pod);
    if (info === undefined || notReady() !== undefined) {
      return json(names.map((Host) => ({ Host, Score: 0 })) satisfies HostPriorityList);
    }
    const scores = prioritize(o.state, info, names, o.scoring, MAX_EXTENDER_PRIORITY, o.random);
    return json(scores.map((s) => ({ Host: s.host, Score: s.score })) satisfies HostPriorityList);
  };

  const bind = async (body: unknown): Promise<Response> => {
    const args = ExtenderBindingArgsSchema.safeParse(body);
    if (!args.success) return textError(400, "bad JSON");
    const a = args.data;
    call("Reserve", a.PodNamespace);
    const result = (error: string): Response =>
      json({ Error: error } satisfies ExtenderBindingResult);
    const problem = notReady();
    if (problem !== undefined) {
      fail("Reserve", a.PodNamespace, "Error");
      return result(problem);
    }
    let info: PodInfo | undefined;
    const uid = o.state.podsByName.get(key(a.PodNamespace, a.PodName));
    if (uid === a.PodUID) info = o.state.pods.get(uid)?.info;
    if (info === undefined) {
      try {
        info = o.sync.podInfo(await o.kube.getPod(a.PodNamespace, a.PodName));
      } catch (error) {
        fail("Reserve", a.PodNamespace, "Error");
        return result(`autoscale-scheduler: cannot read pod: ${errorChainMessage(error)}`);
      }
      if (info === undefined || info.uid !== a.PodUID) {
        fail("Reserve", a.PodNamespace, "Error");
        return result("autoscale-scheduler: pod changed since it was scheduled");
      }
    }
    const reserved = reserveForBind(o.state, info, a.Node);
    if (!reserved.ok) {
      o.metrics?.reserveShouldDeny.inc();
      fail("Reserve", a.PodNamespace, "Unschedulable");
      return result(reserved.reason);
    }
    try {
      await o.kube.bindPod(a);
      o.metrics?.k8sOps.inc({ op: "create", kind: "Binding", outcome: "success" });
    } catch (error) {
      o.metrics?.k8sOps.inc({ op: "create", kind: "Binding", outcome: "failure" });
      // A Binding that failed (or whose answer was lost) leaves the pod unbound or bound: the
      // watch tells which; until then the tentative placement stays counted only when it could
      // have succeeded.
      const status = (error as { status?: number }).status;
      if (status !== undefined && status >= 400 && status < 500) releaseBind(o.state, info);
      fail("Reserve", a.PodNamespace, "Error");
      return result(`autoscale-scheduler: binding failed: ${errorChainMessage(error)}`);
    }
    o.logger.info("Bound pod", { pod: key(a.PodNamespace, a.PodName), node: a.Node });
    return result("");
  };

  return async (req: Request): Promise<Response> => {
    const path = new URL(req.url).pathname.replace(/\/+$/, "");
    if (req.method !== "POST") return textError(400, "must be POST");
    let body: unknown;
    try {
      body = await req.json();
    } catch {
      return textError(400, "bad JSON");
    }
    try {
      switch (path) {
        case `${EXTENDER_PREFIX}/filter`:
          return filter(body);
        case `${EXTENDER_PREFIX}/prioritize`:
          return prioritizeCall(body);
        case `${EXTENDER_PREFIX}/bind`:
          return await bind(body);
        default:
          return textError(404, "unknown extender verb");
      }
    } catch (error) {
      o.logger.error("Extender handler failed", { path, error });
      return textError(500, "request handler panicked");
    }
  };
}
