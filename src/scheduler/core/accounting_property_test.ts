// Property test of the safety invariant: whatever sequence of placements, deletions, agent
// requests (granted, partly granted, decreased), annotation writes landing or being lost, and
// scheduler crashes with state rebuilt from objects alone, no node ever holds more than it has,
// and the accounting never counts less than the VMs may really use.
//
// The test plays the io layer's part with the same core calls the real handlers make: decide →
// apply → persist (awaited for increases, written behind otherwise) → answer.
import assert from "node:assert/strict";
import fc from "fast-check";
import { GiB } from "../../api/quantity.ts";
import type { NodeInfo, PodInfo } from "./objects.ts";
import { node, plainPod, request, testState, vmPod, vmView } from "./_fixtures.ts";
import { applyPermit, decidePermit } from "./permit.ts";
import { filterNodes, releaseBind, reserveForBind } from "./placement.ts";
import { startMigrations } from "./balance.ts";
import { NO_OVERCOMMIT, type Res, toNodeUnits } from "./resources.ts";
import {
  beginWrite,
  type ClusterState,
  deletePod,
  deleteVm,
  endWrite,
  recomputeSums,
  setMigrationRequested,
  sumsEqual,
  upsertNode,
  upsertPod,
  upsertVm,
} from "./state.ts";

interface WorldVm {
  name: string;
  approved: Res | undefined; // the persisted annotation
  specUse: Res;
  lastPermit: Res | null; // what the agent holds
  overcommit: Res;
}
interface WorldPod {
  info: PodInfo; // nodeName set once bound
}
interface PendingWrite {
  vm: string;
  approved: Res;
}
interface World {
  nodes: NodeInfo[];
  vms: Map<string, WorldVm>;
  pods: Map<string, WorldPod>;
  state: ClusterState;
  pending: PendingWrite[];
  nextId: number;
  granted: number;
  restarts: number;
}

const IGNORED = "overprovisioning";
const UNIT: Res = { cpu: 250, mem: GiB / 4 };

function podOf(w: World, vm: WorldVm): WorldPod | undefined {
  for (const p of w.pods.values()) if (p.info.vm?.vmName === vm.name) return p;
  return undefined;
}

function vmPodInfo(vm: WorldVm, uid: string, nodeName: string | undefined): PodInfo {
  return vmPod(vm.name, {
    uid,
    node: nodeName,
    actual: vm.specUse,
    overcommit: vm.overcommit,
    migratable: true,
    createdAtMs: Number(uid.slice(1)),
  });
}

function syncVm(w: World, vm: WorldVm): void {
  upsertVm(w.state, vmView(vm.name, vm.approved, vm.specUse));
  const p = podOf(w, vm);
  if (p !== undefined) {
    p.info = vmPodInfo(vm, p.info.uid, p.info.nodeName);
    upsertPod(w.state, p.info);
  }
}

function rebuild(w: World): void {
  const s = testState(0.9, [IGNORED]);
  s.synced = false;
  for (const n of w.nodes) upsertNode(s, n);
  for (const p of w.pods.values()) upsertPod(s, p.info);
  for (const vm of w.vms.values()) upsertVm(s, vmView(vm.name, vm.approved, vm.specUse));
  s.synced = true;
  w.state = s;
  w.pending = [];
  w.restarts++;
}

function place(w: World, info: PodInfo): string | undefined {
  const { fit } = filterNodes(w.state, info, w.nodes.map((n) => n.name));
  const target = fit[0];
  if (target === undefined) return undefined;
  const r = reserveForBind(w.state, info, target);
  assert.ok(r.ok, "bind right after filter must succeed in a single thread");
  return target;
}

// Independent truth: what each node's pods may really use, from the objects and the agents.
function checkInvariant(w: World): void {
  const truth = new Map<string, Res>();
  for (const p of w.pods.values()) {
    const n = p.info.nodeName;
    if (n === undefined || p.info.namespace === IGNORED) continue;
    let raw: Res = p.info.requests;
    let oc = NO_OVERCOMMIT;
    if (p.info.vm !== undefined) {
      const vm = w.vms.get(p.info.vm.vmName)!;
      raw = vm.specUse;
      if (vm.approved) {
        raw = { cpu: Math.max(raw.cpu, vm.approved.cpu), mem: Math.max(raw.mem, vm.approved.mem) };
      }
      if (vm.lastPermit) {
        raw = {
          cpu: Math.max(raw.cpu, vm.lastPermit.cpu),
          mem: Math.max(raw.mem, vm.lastPermit.mem),
        };
      }
      oc = vm.overcommit;
    }
    const u = toNodeUnits(raw, oc);
    const t = truth.get(n) ?? { cpu: 0, mem: 0 };
    truth.set(n, { cpu: t.cpu + u.cpu, mem: t.mem + u.mem });
  }
  const recomputed = recomputeSums(w.state);
  for (const n of w.nodes) {
    const t = truth.get(n.name) ?? { cpu: 0, mem: 0 };
    assert.ok(
      t.cpu <= n.total.cpu && t.mem <= n.total.mem,
      `node ${n.name} over-committed: ${JSON.stringify(t)} > ${JSON.stringify(n.total)}`,
    );
    const e = w.state.nodes.get(n.name);
    const reserved = e?.sums.reserved ?? { cpu: 0, mem: 0 };
    assert.ok(
      reserved.cpu <= n.total.cpu && reserved.mem <= n.total.mem,
      `accounting over total on ${n.name}`,
    );
    assert.ok(
      reserved.cpu >= t.cpu && reserved.mem >= t.mem,
      `accounting under-counts ${n.name}: ${JSON.stringify(reserved)} < ${JSON.stringify(t)}`,
    );
    if (e !== undefined) {
      const fresh = recomputed.get(n.name);
      if (fresh !== undefined) {
        assert.ok(sumsEqual(e.sums, fresh), `incremental sums drifted on ${n.name}`);
      }
    }
  }
}

type Op =
  | { t: "vm"; cpuUnits: number; memUnits: number; oc: boolean }
  | { t: "plain"; cpu: number; memUnits: number; ignored: boolean }
  | { t: "delete"; pick: number }
  | { t: "shrink"; pick: number; percent: number }
  | { t: "request"; pick: number; cpuUnits: number; memUnits: number; crash: number }
  | { t: "flush"; pick: number; lose: boolean }
  | { t: "restart" }
  | { t: "apply"; pick: number }
  | { t: "balance"; pick: number }
  | { t: "migrationEnds"; pick: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant("vm" as const),
      cpuUnits: fc.integer({ min: 1, max: 8 }),
      memUnits: fc.integer({ min: 1, max: 16 }),
      oc: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant("plain" as const),
      cpu: fc.integer({ min: 0, max: 2000 }),
      memUnits: fc.integer({ min: 0, max: 8 }),
      ignored: fc.boolean(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ t: fc.constant("delete" as const), pick: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant("shrink" as const),
      pick: fc.nat(),
      percent: fc.integer({ min: 0, max: 100 }),
    }),
  },
  {
    weight: 10,
    arbitrary: fc.record({
      t: fc.constant("request" as const),
      pick: fc.nat(),
      cpuUnits: fc.integer({ min: 1, max: 16 }),
      memUnits: fc.integer({ min: 1, max: 32 }),
      crash: fc.integer({ min: 0, max: 19 }),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({ t: fc.constant("flush" as const), pick: fc.nat(), lose: fc.boolean() }),
  },
  { weight: 1, arbitrary: fc.constant({ t: "restart" as const }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant("apply" as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("balance" as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("migrationEnds" as const), pick: fc.nat() }) },
);

function pickOf<T>(items: Iterable<T>, pick: number): T | undefined {
  const arr = [...items];
  return arr.length === 0 ? undefined : arr[pick % arr.length];
}

function run(w: World, op: Op): void {
  switch (op.t) {
    case "vm": {
      const name = `vm${w.nextId}`;
      const uid = `u${w.nextId++}`;
      const use = { cpu: op.cpuUnits * UNIT.cpu, mem: op.memUnits * UNIT.mem };
      const vm: WorldVm = {
        name,
        approved: undefined,
        specUse: use,
        lastPermit: null,
        overcommit: op.oc ? { cpu: 2000, mem: 1000 } : NO_OVERCOMMIT,
      };
      w.vms.set(name, vm);
      upsertVm(w.state, vmView(name, undefined, use));
      const pending = vmPodInfo(vm, uid, undefined);
      w.pods.set(uid, { info: pending });
      upsertPod(w.state, pending);
      const target = place(w, pending);
      if (target !== undefined) {
        const bound = { ...pending, nodeName: target };
        w.pods.set(uid, { info: bound });
        upsertPod(w.state, bound);
      }
      return;
    }
    case "plain": {
      const uid = `p${w.nextId++}`;
      const info = {
        ...plainPod(
          uid,
          undefined,
          { cpu: op.cpu, mem: op.memUnits * UNIT.mem },
          op.ignored ? IGNORED : "default",
        ),
        uid,
      };
      const target = place(w, info);
      if (target === undefined) {
        releaseBind(w.state, info);
        deletePod(w.state, uid);
        return;
      }
      const bound = { ...info, nodeName: target };
      w.pods.set(uid, { info: bound });
      upsertPod(w.state, bound);
      return;
    }
    case "delete": {
      const p = pickOf(w.pods.values(), op.pick);
      if (p === undefined) return;
      w.pods.delete(p.info.uid);
      deletePod(w.state, p.info.uid);
      if (p.info.vm !== undefined) {
        w.vms.delete(p.info.vm.vmName);
        deleteVm(w.state, "default", p.info.vm.vmName);
        w.pending = w.pending.filter((x) => x.vm !== p.info.vm!.vmName);
      }
      return;
    }
    case "shrink": {
      // In-place resize of a plain pod down (its requests only ever shrink from outside).
      const plain = [...w.pods.values()].filter((p) => p.info.vm === undefined);
      const p = pickOf(plain, op.pick);
      if (p === undefined) return;
      const r = p.info.requests;
      p.info = {
        ...p.info,
        requests: {
          cpu: Math.floor((r.cpu * op.percent) / 100),
          mem: Math.floor((r.mem * op.percent) / 100),
        },
      };
      upsertPod(w.state, p.info);
      return;
    }
    case "request": {
      const vm = pickOf(w.vms.values(), op.pick);
      if (vm === undefined) return;
      const want = { cpu: op.cpuUnits * UNIT.cpu, mem: op.memUnits * UNIT.mem };
      // The agent scales down first (VM patch), then asks.
      const down = {
        cpu: Math.min(vm.specUse.cpu, want.cpu),
        mem: Math.min(vm.specUse.mem, want.mem),
      };
      if (down.cpu !== vm.specUse.cpu || down.mem !== vm.specUse.mem) {
        vm.specUse = down;
        syncVm(w, vm);
      }
      const o = decidePermit(w.state, request(vm.name, want, vm.lastPermit, UNIT));
      if (o.kind === "refuse") return;
      applyPermit(w.state, o);
      if (o.mustPersist) {
        if (op.crash === 0) return rebuild(w); // crash before the patch: nothing recorded
        // Writes of one VM are serial: earlier write-behinds land before this one.
        for (const pw of w.pending.filter((x) => x.vm === vm.name)) {
          endWrite(w.state, `default/${vm.name}`, pw.approved);
          vm.approved = pw.approved;
        }
        w.pending = w.pending.filter((x) => x.vm !== vm.name);
        const latest = w.state.vms.get(`default/${vm.name}`)!.decision!.approved;
        vm.approved = latest;
        syncVm(w, vm);
        if (op.crash === 1) return rebuild(w); // crash after the patch, before answering
      } else {
        // The writer captures the VM's latest decision when its write starts (right away).
        const captured = w.state.vms.get(`default/${vm.name}`)!.decision!.approved;
        beginWrite(w.state, `default/${vm.name}`, captured);
        w.pending.push({ vm: vm.name, approved: captured });
      }
      if (o.permit.cpu > (vm.lastPermit?.cpu ?? 0) || o.permit.mem > (vm.lastPermit?.mem ?? 0)) {
        w.granted++;
      }
      vm.lastPermit = o.permit;
      return;
    }
    case "flush": {
      const i = w.pending.length === 0 ? -1 : op.pick % w.pending.length;
      if (i < 0) return;
      // Oldest pending write of the chosen VM (one VM's writes land in order).
      const vmName = w.pending[i]!.vm;
      const j = w.pending.findIndex((x) => x.vm === vmName);
      const pw = w.pending[j]!;
      w.pending.splice(j, 1);
      endWrite(w.state, `default/${pw.vm}`, pw.approved);
      const vm = w.vms.get(pw.vm);
      if (vm === undefined || op.lose) return; // a failed write changes nothing
      vm.approved = pw.approved;
      syncVm(w, vm);
      return;
    }
    case "apply": {
      // The agent applies its last permit to the VM some time after receiving it.
      const vm = pickOf(w.vms.values(), op.pick);
      if (vm === undefined || vm.lastPermit === null) return;
      vm.specUse = vm.lastPermit;
      syncVm(w, vm);
      return;
    }
    case "restart":
      return rebuild(w);
    case "balance": {
      const n = pickOf(w.nodes, op.pick);
      if (n !== undefined) startMigrations(w.state, n.name, 0);
      return;
    }
    case "migrationEnds": {
      const uid = pickOf(w.state.requestedMigrations.keys(), op.pick);
      if (uid !== undefined) setMigrationRequested(w.state, uid, false, 0);
      return;
    }
  }
}

Deno.test("property: ≥100,000 random operations never over-commit a node", () => {
  let total = 0;
  let granted = 0;
  let restarts = 0;
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          cpu: fc.integer({ min: 2, max: 16 }),
          memGi: fc.integer({ min: 2, max: 32 }),
        }),
        { minLength: 1, maxLength: 4 },
      ),
      fc.array(opArb, { minLength: 2500, maxLength: 2500 }),
      (nodeSpecs, ops) => {
        const w: World = {
          nodes: nodeSpecs.map((s, i) => node(`n${i}`, s.cpu * 1000, s.memGi * GiB)),
          vms: new Map(),
          pods: new Map(),
          state: testState(0.9, [IGNORED]),
          pending: [],
          nextId: 1,
          granted: 0,
          restarts: 0,
        };
        for (const n of w.nodes) upsertNode(w.state, n);
        for (const op of ops) {
          run(w, op);
          checkInvariant(w);
        }
        total += ops.length;
        granted += w.granted;
        restarts += w.restarts;
      },
    ),
    { numRuns: 40 },
  );
  assert.ok(total >= 100_000, `ran ${total} operations`);
  // The test must exercise real grants and restarts, not just refusals.
  assert.ok(granted > 1000, `only ${granted} increases granted`);
  assert.ok(restarts > 100, `only ${restarts} restarts`);
});
