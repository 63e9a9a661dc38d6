/**
 * The permit decision for one agent request (reference §1.1 handler and §4.2 "granting requests",
 * decided in memory as D3 asks): decreases are always granted, increases only up to what fits on
 * the node in scaling-unit multiples, per resource independently; a VM being migrated gets no
 * increase and `migrate: {}`. The decision says whether it must be persisted on the
 * VirtualMachine before the permit is returned (anything above what is recorded there) or may be
 * written behind (no change, decreases).
 * Pure: no I/O, no clocks; `decidePermit` does not modify the state, `applyPermit` does.
 * @module
 */
import type { AgentRequest } from "../../api/permit.ts";
import {
  equal,
  excess,
  fitsIn,
  floorToMultiple,
  fromNodeUnits,
  max,
  min,
  NO_OVERCOMMIT,
  type Res,
  ZERO,
} from "./resources.ts";
import {
  type ClusterState,
  type Decision,
  freeUnits,
  isMigrating,
  key,
  rawReservation,
  setDecision,
} from "./state.ts";

/** A request the scheduler refuses (HTTP status and text body). */
export interface PermitRefusal {
  /** Discriminant. */
  readonly kind: "refuse";
  /** HTTP status. */
  readonly status: 400 | 404 | 503;
  /** Plain-text message. */
  readonly message: string;
}

/** A permit to give, with what to record. */
export interface PermitGrant {
  /** Discriminant. */
  readonly kind: "grant";
  /** `namespace/name` of the VirtualMachine. */
  readonly vmKey: string;
  /** Pod UID. */
  readonly podUid: string;
  /** Node the pod is on. */
  readonly node: string;
  /** Resources permitted. */
  readonly permit: Res;
  /** The VM is about to move: answer `migrate: {}`. */
  readonly migrate: boolean;
  /** The decision to store; `approved` is what stays reserved (≥ permit, see decidePermit). */
  readonly decision: Decision;
  /** Some field exceeds what is recorded on the VM: persist before answering. */
  readonly mustPersist: boolean;
  /** Some field grew compared to the pod's current reservation (for metrics). */
  readonly increased: boolean;
}

/** The outcome of {@linkcode decidePermit}. */
export type PermitOutcome = PermitRefusal | PermitGrant;

function refuse(status: 400 | 404 | 503, message: string): PermitRefusal {
  return { kind: "refuse", status, message };
}

/**
 * Decides the answer to a (version-checked) agent request without changing the state; `podKey` is
 * the request's `namespace/name` when the caller has already built it.
 */
export function decidePermit(
  state: ClusterState,
  req: AgentRequest,
  podKey: string = key(req.pod.namespace, req.pod.name),
): PermitOutcome {
  if (!state.synced) return refuse(503, "scheduler state is not synced yet");
  const uid = state.podsByName.get(podKey);
  const pod = uid === undefined ? undefined : state.pods.get(uid);
  if (pod === undefined || uid === undefined) return refuse(404, "pod not found");
  const nodeName = pod.info.nodeName;
  if (nodeName === undefined) return refuse(404, "pod's node is unknown");
  const vm = pod.info.vm;
  if (vm === undefined) return refuse(400, "pod is not owned by a VirtualMachine");
  const node = state.nodes.get(nodeName);
  if (node?.info === undefined) return refuse(404, `pod's node ${nodeName} is unknown`);
  const vmKey = pod.vmKey ?? key(pod.info.namespace, vm.vmName);
  const entry = state.vms.get(vmKey);

  const current = rawReservation(state, pod);
  const migrating = isMigrating(state, pod);
  const unit = req.computeUnit;
  const want = { cpu: req.resources.vCPUs, mem: req.resources.mem };

  let permit: Res = want; // decreases and no-change are always granted
  if (!fitsIn(want, current)) {
    const roomRaw = fromNodeUnits(freeUnits(node), vm.overcommitMilli ?? NO_OVERCOMMIT);
    const grantOne = (wantR: number, curR: number, roomR: number, unitR: number): number => {
      if (wantR <= curR) return wantR;
      if (migrating) return curR; // a VM about to move gets no increase
      const increase = floorToMultiple(roomR, unitR);
      return curR + Math.min(increase, wantR - curR);
    };
    permit = {
      cpu: grantOne(want.cpu, current.cpu, roomRaw.cpu, unit.vCPUs),
      mem: grantOne(want.mem, current.mem, roomRaw.mem, unit.mem),
    };
  }
  const denied = excess(want, permit);
  // The agent keeps acting on its last permit until it receives this one, so the reservation is
  // max(new permit, what it holds), capped by what we had reserved (an agent cannot make us count
  // more than we granted). A decrease therefore frees room once the agent has acknowledged it by
  // sending it back as `lastPermit` — one request later — and a crash between recording and
  // answering leaves the old permit covered.
  const last = req.lastPermit;
  const held = last === null ? ZERO : min({ cpu: last.vCPUs, mem: last.mem }, current);
  const reserve = max(permit, held);
  const persisted = entry?.view !== undefined ? entry.view.approved : vm.podApproved;
  // Anything above the lowest value recorded or being recorded must be on the VM first, so a crash
  // can never leave an approval the agent acts on unrecorded.
  let mustPersist = persisted === undefined || !fitsIn(reserve, persisted);
  for (const w of entry?.writing ?? []) if (!fitsIn(reserve, w)) mustPersist = true;
  return {
    kind: "grant",
    vmKey,
    podUid: uid,
    node: nodeName,
    permit,
    migrate: migrating,
    decision: {
      approved: reserve,
      requested: want,
      scalingUnit: { cpu: unit.vCPUs, mem: unit.mem },
      denied,
    },
    mustPersist,
    increased: !fitsIn(permit, current),
  };
}

/** Records a grant in the state (before persisting it: an increase counts from now on). */
export function applyPermit(state: ClusterState, grant: PermitGrant): void {
  const cur = state.vms.get(grant.vmKey)?.decision;
  const d = grant.decision;
  if (
    cur !== undefined && equal(cur.approved, d.approved) && equal(cur.requested, d.requested) &&
    equal(cur.scalingUnit, d.scalingUnit) && equal(cur.denied, d.denied)
  ) {
    return; // unchanged: nothing to recount (the common no-change request)
  }
  setDecision(state, grant.vmKey, d);
}
