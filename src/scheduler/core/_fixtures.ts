/**
 * Builders of nodes, pods and VM views for the scheduler core tests. Test support only: imported
 * by `*_test.ts` files, never by production code. Pure: no I/O.
 * @module
 */
import type { AgentRequest } from "../../api/permit.ts";
import { GiB } from "../../api/quantity.ts";
import type { NodeInfo, PodInfo, VmView } from "./objects.ts";
import { NO_OVERCOMMIT, type Res } from "./resources.ts";
import { type ClusterState, newClusterState } from "./state.ts";

/** A state with watermark 0.9 and no ignored namespaces, already synced. */
export function testState(watermark = 0.9, ignored: string[] = []): ClusterState {
  const s = newClusterState({
    watermark,
    ignoredNamespaces: new Set(ignored),
    schedulerName: "autoscale-scheduler",
  });
  s.synced = true;
  return s;
}

/** A node with the given totals. */
export function node(name: string, cpu: number, mem: number, watermark = 0.9): NodeInfo {
  return {
    name,
    total: { cpu, mem },
    watermark: { cpu: Math.floor(cpu * watermark), mem: Math.floor(mem * watermark) },
    labels: {},
  };
}

/** Options for {@linkcode vmPod}. */
export interface VmPodOptions {
  /** Namespace (default `default`). */
  namespace?: string;
  /** Bound node. */
  node?: string;
  /** Actual use from the pod annotation. */
  actual?: Res;
  /** Overcommit thousandths. */
  overcommit?: Res;
  /** Migration allowed by labels. */
  migratable?: boolean;
  /** Creation time. */
  createdAtMs?: number;
  /** Role. */
  role?: "none" | "source" | "target";
  /** Approved annotation on the pod. */
  podApproved?: Res;
  /** UID override. */
  uid?: string;
}

/** A VM runner pod named `<vm>-pod`. */
export function vmPod(vmName: string, o: VmPodOptions = {}): PodInfo {
  const ns = o.namespace ?? "default";
  return {
    uid: o.uid ?? `uid-${ns}-${vmName}`,
    namespace: ns,
    name: `${vmName}-pod`,
    nodeName: o.node,
    schedulerName: "autoscale-scheduler",
    createdAtMs: o.createdAtMs ?? 0,
    terminal: false,
    requests: { cpu: 0, mem: 0 },
    vm: {
      vmName,
      role: o.role ?? "none",
      migrationAllowed: o.migratable ?? false,
      actual: o.actual,
      maxSize: undefined,
      overcommitMilli: o.overcommit ?? NO_OVERCOMMIT,
      podApproved: o.podApproved,
    },
  };
}

/** A plain pod accounted by its requests. */
export function plainPod(
  name: string,
  nodeName: string | undefined,
  req: Res,
  ns = "default",
): PodInfo {
  return {
    uid: `uid-${ns}-${name}`,
    namespace: ns,
    name,
    nodeName,
    schedulerName: "default-scheduler",
    createdAtMs: 0,
    terminal: false,
    requests: req,
    vm: undefined,
  };
}

/** A VM view with an approved annotation (or none). */
export function vmView(
  name: string,
  approved: Res | undefined,
  specUse?: Res,
  ns = "default",
): VmView {
  const raw = approved === undefined
    ? undefined
    : JSON.stringify({ vCPUs: approved.cpu, mem: approved.mem });
  return {
    namespace: ns,
    name,
    uid: `vmuid-${ns}-${name}`,
    hasAnnotations: approved !== undefined,
    rawApproved: raw,
    rawRequested: undefined,
    rawScalingUnit: undefined,
    approved,
    specUse,
  };
}

/** A v5.0 agent request for `<vm>-pod`. */
export function request(
  vmName: string,
  want: Res,
  lastPermit: Res | null = null,
  unit: Res = { cpu: 250, mem: GiB },
  ns = "default",
): AgentRequest {
  return {
    protoVersion: 7,
    pod: { namespace: ns, name: `${vmName}-pod` },
    computeUnit: { vCPUs: unit.cpu, mem: unit.mem },
    resources: { vCPUs: want.cpu, mem: want.mem },
    lastPermit: lastPermit === null ? null : { vCPUs: lastPermit.cpu, mem: lastPermit.mem },
    metrics: null,
  };
}
