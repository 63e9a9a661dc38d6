/**
 * The agent's global state (§3.1, §3.6, §3.7): turns VirtualMachine watch events into one Runner
 * per VM this node is responsible for, restarts runners that crash (immediately if they ran more
 * than 10 s, else after a random 5–10 s), refreshes the runner-state gauge and per-VM gauges, and
 * serves the state dump. Owns no decision logic.
 * @module
 */
import type { VirtualMachine } from "../../api/virtualmachine.ts";
import { errorChainMessage, errorToJson } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { TaskGroup } from "../../lib/task_group.ts";
import {
  extractVmInfo,
  isResponsible,
  LABEL_ENDPOINT_ID,
  LABEL_PROJECT_ID,
  runnerKey,
} from "../core/vm_info.ts";
import { Runner, type RunnerDeps, type RunnerVm } from "./runner.ts";

/** Shared services plus this agent's identity. */
export interface GlobalDeps extends RunnerDeps {
  /** `K8S_NODE_NAME`. */
  readonly nodeName: string;
}

/** A VM event as the global state consumes it. */
export type VmEvent =
  | { readonly type: "upsert"; readonly vm: VirtualMachine }
  | { readonly type: "delete"; readonly vm: VirtualMachine };

interface Entry {
  runner: Runner;
  vm: RunnerVm;
  readonly ctl: AbortController;
  startMs: number;
  state: "ok" | "stuck" | "panicked";
  stateUpdatedMs: number;
  endState: unknown;
  previousEndStates: unknown[];
}

const RUNNER_RESTART_MIN_WAIT_MS = 5000;
const RUNNER_RESTART_MAX_WAIT_MS = 10_000;

/** Runners for the VMs on this node. */
export class AgentGlobal {
  readonly #deps: GlobalDeps;
  readonly #log: Logger;
  readonly #entries = new Map<string, Entry>();
  /** Per-VM gauge label sets currently exported, by VM key. */
  readonly #gaugeLabels = new Map<string, Record<string, string>>();
  #tg: TaskGroup | undefined;
  #stopped = false;

  /** Creates the global state. */
  constructor(deps: GlobalDeps) {
    this.#deps = deps;
    this.#log = deps.logger.child("global");
  }

  /** Number of runners. */
  get runnerCount(): number {
    return this.#entries.size;
  }

  /** The runner for a pod key (`namespace/pod`), if any. */
  runner(key: string): Runner | undefined {
    return this.#entries.get(key)?.runner;
  }

  /** Applies one VM event. */
  handle(ev: VmEvent): void {
    const vm = ev.vm;
    this.#updateVmGauges(ev);
    const key = runnerKey(vm);
    const responsible = ev.type === "upsert" &&
      isResponsible(vm, this.#deps.nodeName, this.#deps.config.scheduler.schedulerName);
    // A pod change (restart) gives a new key: stop runners of this VM under other keys.
    for (const [k, e] of this.#entries) {
      if (
        k !== key && e.vm.info.namespace === vm.metadata.namespace &&
        e.vm.info.name === vm.metadata.name
      ) {
        this.#stop(k);
      }
    }
    if (!responsible) {
      if (this.#entries.has(key)) this.#stop(key);
      return;
    }
    const info = extractVmInfo(vm);
    if (!info.ok) {
      this.#log.warn("ignoring VM event: cannot extract VM info", {
        virtualmachine: `${vm.metadata.namespace}/${vm.metadata.name}`,
        error: info.error,
      });
      return;
    }
    const rvm: RunnerVm = {
      info: info.value,
      podName: vm.status?.podName ?? "",
      podIP: vm.status?.podIP ?? "",
      endpointId: vm.metadata.labels?.[LABEL_ENDPOINT_ID],
      projectId: vm.metadata.labels?.[LABEL_PROJECT_ID],
    };
    const existing = this.#entries.get(key);
    if (existing) {
      existing.vm = rvm;
      existing.runner.updateVm(rvm);
      return;
    }
    this.#start(key, rvm);
  }

  #start(key: string, vm: RunnerVm): void {
    const now = this.#deps.clock.now();
    const entry: Entry = {
      runner: new Runner(this.#deps, vm),
      vm,
      ctl: new AbortController(),
      startMs: now,
      state: "ok",
      stateUpdatedMs: now,
      endState: null,
      previousEndStates: [],
    };
    this.#entries.set(key, entry);
    this.#deps.metrics.runnerStarts.inc();
    const tg = this.#tg;
    if (tg === undefined) return; // Started by run() later.
    this.#spawn(tg, key, entry);
  }

  #spawn(tg: TaskGroup, key: string, entry: Entry): void {
    const { clock, metrics } = this.#deps;
    tg.spawn(`runner ${key}`, async (groupSignal) => {
      const signal = AbortSignal.any([groupSignal, entry.ctl.signal]);
      while (!signal.aborted) {
        try {
          await entry.runner.run(signal);
          return;
        } catch (error) {
          if (signal.aborted) return;
          metrics.runnerPanics.inc();
          const now = clock.now();
          this.#log.error("runner crashed", { runner: key, error: errorChainMessage(error) });
          if (entry.endState !== null) entry.previousEndStates.push(entry.endState);
          entry.endState = { at: new Date(now).toISOString(), error: errorToJson(error) };
          entry.state = "panicked";
          entry.stateUpdatedMs = now;
          const ranMs = now - entry.startMs;
          if (ranMs <= 10_000) {
            const waitMs = RUNNER_RESTART_MIN_WAIT_MS +
              this.#deps.random() * (RUNNER_RESTART_MAX_WAIT_MS - RUNNER_RESTART_MIN_WAIT_MS);
            try {
              await clock.sleep(waitMs, signal);
            } catch {
              return; // Stopped while waiting to restart.
            }
          }
          metrics.runnerRestarts.inc();
          entry.runner = new Runner(this.#deps, entry.vm);
          entry.startMs = clock.now();
          entry.state = "ok";
          entry.stateUpdatedMs = entry.startMs;
        }
      }
    });
  }

  #stop(key: string): void {
    const e = this.#entries.get(key);
    if (!e) return;
    e.ctl.abort();
    this.#entries.delete(key);
  }

  #updateVmGauges(ev: VmEvent): void {
    const vm = ev.vm;
    const vmKey = `${vm.metadata.namespace}/${vm.metadata.name}`;
    const m = this.#deps.metrics;
    const old = this.#gaugeLabels.get(vmKey);
    const onNode = ev.type === "upsert" && vm.status?.node === this.#deps.nodeName;
    const labels = {
      vm_namespace: vm.metadata.namespace ?? "",
      vm_name: vm.metadata.name ?? "",
      endpoint_id: vm.metadata.labels?.[LABEL_ENDPOINT_ID] ?? "",
      project_id: vm.metadata.labels?.[LABEL_PROJECT_ID] ?? "",
    };
    if (old !== undefined && (!onNode || JSON.stringify(old) !== JSON.stringify(labels))) {
      for (
        const value of [
          "spec_min",
          "spec_max",
          "spec_use",
          "status_use",
          "autoscaling_min",
          "autoscaling_max",
        ]
      ) {
        m.vmCpu.remove({ ...old, value });
        m.vmMem.remove({ ...old, value });
      }
      for (const component of ["total", "cpu", "mem", "lfc"]) {
        m.vmDesiredCu.remove({ ...old, component });
      }
      m.vmRestarts.remove(old);
      m.vmExtraIp.remove(old);
      this.#gaugeLabels.delete(vmKey);
    }
    if (!onNode) return;
    this.#gaugeLabels.set(vmKey, labels);
    const g = vm.spec.guest;
    const slot = g.memorySlotSize;
    m.vmCpu.set({ ...labels, value: "spec_min" }, g.cpus.min / 1000);
    m.vmCpu.set({ ...labels, value: "spec_max" }, g.cpus.max / 1000);
    m.vmCpu.set({ ...labels, value: "spec_use" }, g.cpus.use / 1000);
    m.vmMem.set({ ...labels, value: "spec_min" }, g.memorySlots.min * slot);
    m.vmMem.set({ ...labels, value: "spec_max" }, g.memorySlots.max * slot);
    m.vmMem.set({ ...labels, value: "spec_use" }, g.memorySlots.use * slot);
    if (vm.status?.cpus !== undefined) {
      m.vmCpu.set({ ...labels, value: "status_use" }, vm.status.cpus / 1000);
    }
    if (vm.status?.memorySize !== undefined) {
      m.vmMem.set({ ...labels, value: "status_use" }, vm.status.memorySize);
    }
    const info = extractVmInfo(vm);
    if (info.ok) {
      m.vmCpu.set({ ...labels, value: "autoscaling_min" }, info.value.cpu.min / 1000);
      m.vmCpu.set({ ...labels, value: "autoscaling_max" }, info.value.cpu.max / 1000);
      m.vmMem.set({ ...labels, value: "autoscaling_min" }, info.value.mem.min);
      m.vmMem.set({ ...labels, value: "autoscaling_max" }, info.value.mem.max);
    }
    m.vmRestarts.set(labels, vm.status?.restartCount ?? 0);
    m.vmExtraIp.set(labels, vm.status?.extraNetIP ? 1 : 0);
  }

  /** Recomputes each runner's ok/stuck state and the runners gauge. */
  refreshStates(): void {
    const now = this.#deps.clock.now();
    const counts = new Map<string, number>();
    for (const e of this.#entries.values()) {
      if (e.state !== "panicked") {
        const next = e.runner.stuckReasons(now).length > 0 ? "stuck" : "ok";
        if (next !== e.state) {
          e.state = next;
          e.stateUpdatedMs = now;
        }
      }
      const k = `${e.vm.endpointId ? "true" : "false"}|${e.state}`;
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    const g = this.#deps.metrics.runnersCurrent;
    for (const isEndpoint of ["true", "false"]) {
      for (const state of ["ok", "stuck", "panicked"]) {
        g.set({ is_endpoint: isEndpoint, state }, counts.get(`${isEndpoint}|${state}`) ?? 0);
      }
    }
  }

  /** The state dump (§3.7), pods sorted by name. */
  dump(): unknown {
    const pods = [...this.#entries.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([key, e]) => {
        let runner: unknown = null;
        let collectionError: unknown = null;
        try {
          runner = e.runner.dump();
        } catch (error) {
          collectionError = errorToJson(error);
        }
        const h = e.runner.health;
        const iso = (ms: number | undefined) =>
          ms === undefined ? null : new Date(ms).toISOString();
        return {
          podName: key,
          status: {
            startTime: iso(e.startMs),
            endState: e.endState,
            previousEndStates: e.previousEndStates,
            lastSuccessfulMonitorComm: iso(h.lastSuccessfulMonitorCommMs),
            failedMonitorRequestCounter: h.failedMonitorMs.length,
            failedNeonVMRequestCounter: h.failedNeonVmMs.length,
            failedSchedulerRequestCounter: h.failedSchedulerMs.length,
            vmInfo: e.vm.info,
            endpointID: e.vm.endpointId ?? "",
            endpointAssignedAt: null,
            state: e.state,
            stateUpdatedAt: iso(e.stateUpdatedMs),
          },
          runner,
          collectionError,
        };
      });
    return { stopped: this.#stopped, pods };
  }

  /** Runs every runner and the status refresher until the signal aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const tg = new TaskGroup(signal);
    this.#tg = tg;
    for (const [key, e] of this.#entries) this.#spawn(tg, key, e);
    tg.spawn("status-refresher", async (s) => {
      const everyMs = this.#deps.config.refereshStateIntervalSeconds * 1000;
      while (!s.aborted) {
        this.refreshStates();
        try {
          await this.#deps.clock.sleep(everyMs, s);
        } catch {
          return; // Stopping.
        }
      }
    });
    try {
      await tg.wait();
    } finally {
      this.#stopped = true;
      this.#tg = undefined;
    }
  }
}

/** The state-dump HTTP handler: `GET /` returns the dump as JSON. */
export function dumpStateHandler(global: AgentGlobal): (req: Request) => Response {
  return (req) => {
    if (req.method !== "GET") return new Response("must be GET\n", { status: 405 });
    const body = JSON.stringify(global.dump(), (_k, v) => (v === undefined ? null : v));
    return new Response(body, { headers: { "content-type": "application/json" } });
  };
}
