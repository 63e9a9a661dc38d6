/**
 * One Runner per managed VM (§3.1): it owns the VM's core state and runs the background work —
 * metrics scrapes (system on 9100, LFC on 9499 when enabled), the vm-monitor connection with
 * reconnects and health checks, and the executors for the actions the core returns (permit
 * request, NeonVM patch, monitor upscale/downscale) — feeding every result back into the core.
 * All decisions are the core's; this file only performs them. Bad input from the VM (metrics
 * garbage, monitor frames) is logged and skipped; it never ends the runner.
 * @module
 */
import type { AgentConfig } from "../../api/agent_config.ts";
import { MONITOR_PATH } from "../../api/monitor_protocol.ts";
import { milliCu } from "../../api/scaling_event.ts";
import type { Clock } from "../../lib/clock.ts";
import { errorChainMessage } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { TaskGroup } from "../../lib/task_group.ts";
import { type HealthRecord, newHealthRecord, recordFailure, stuckReasons } from "../core/health.ts";
import { extractLfcMetrics, extractSystemMetrics } from "../core/metrics.ts";
import { parsePromText } from "../core/prom_text.ts";
import { hypotheticalEvent, type LastHypothetical, wholeCu } from "../core/scaling_events.ts";
import {
  type Actions,
  type CoreConfig,
  decide,
  initialState,
  lfcMetricsUpdated,
  type MonitorAction,
  monitorConnected,
  monitorDisconnected,
  monitorDownscaleResult,
  monitorRequestFailed,
  monitorRequestStarted,
  monitorUpscaleRequested,
  monitorUpscaleSucceeded,
  type NeonVmRequestAction,
  neonvmRequestFailed,
  neonvmRequestStarted,
  neonvmRequestSucceeded,
  type PluginRequestAction,
  pluginRequestFailed,
  pluginRequestStarted,
  pluginRequestSucceeded,
  scalingConfig,
  schedulerChanged,
  type State,
  systemMetricsUpdated,
  type VmInfo,
  vmUpdated,
} from "../core/state.ts";
import { deadline } from "./_deadline.ts";
import { MonitorConnection } from "./monitor_client.ts";
import { neonvmPatchOps, type PatchVmFn } from "./neonvm.ts";
import { type AgentMetrics, directionOfFlags } from "./prom_metrics.ts";
import type { ScalingEventSink } from "./scaling_event_sink.ts";
import { requestPermit, type SchedulerTracker } from "./scheduler.ts";

/** Largest metrics body read from a VM; larger scrapes are rejected. */
const MAX_SCRAPE_BYTES = 4 * 1024 * 1024;
/** Health-check period (hard-coded in the reference). */
const HEALTH_CHECK_PERIOD_MS = 5000;

/** Shared services every runner uses. */
export interface RunnerDeps {
  /** The agent config. */
  readonly config: AgentConfig;
  /** The core's view of it. */
  readonly core: CoreConfig;
  /** Time source. */
  readonly clock: Clock;
  /** Logger (a child per runner is made here). */
  readonly logger: Logger;
  /** Prometheus metrics. */
  readonly metrics: AgentMetrics;
  /** Scaling-event output. */
  readonly events: ScalingEventSink;
  /** The current scheduler pod. */
  readonly scheduler: SchedulerTracker;
  /** HTTP client for scrapes and permit requests. */
  readonly fetch: (req: Request) => Promise<Response>;
  /** Applies a JSON Patch to a VirtualMachine. */
  readonly patchVm: PatchVmFn;
  /** Uniform random number in [0, 1). */
  readonly random: () => number;
}

/** What a runner is told about its VM. */
export interface RunnerVm {
  /** Bounds, config, revision. */
  readonly info: VmInfo;
  /** Runner pod name. */
  readonly podName: string;
  /** Runner pod IP. */
  readonly podIP: string;
  /** `neon/endpoint-id` label, if any. */
  readonly endpointId: string | undefined;
  /** `neon/project-id` label, if any. */
  readonly projectId: string | undefined;
}

/** The runner's part of the state dump (§3.7). */
export interface RunnerDump {
  /** Pod IP. */
  readonly podIP: string;
  /** The core state. */
  readonly executorState: State;
  /** Monitor connection detail. */
  readonly monitor: { readonly waitersSize: number; readonly connected: boolean };
  /** Running background tasks. */
  readonly backgroundWorkerCount: number;
}

function urlHost(ip: string): string {
  return ip.includes(":") ? `[${ip}]` : ip;
}

/** A per-VM runner. */
export class Runner {
  readonly #deps: RunnerDeps;
  readonly #log: Logger;
  #vm: RunnerVm;
  #state: State;
  #health: HealthRecord;
  #lastHypothetical: LastHypothetical | undefined;
  #conn: MonitorConnection | undefined;
  #changed: (() => void) | undefined;
  #dirty = true;
  #workers = 0;
  #unsubscribe: (() => void) | undefined;
  /**
   * Target revisions not yet seen in the VM's `status.currentRevision`, with when the core made
   * them: observed into the scaling latency histogram once the controller reports them applied.
   */
  #pendingRevisions: { value: number; flags: number; atMs: number }[] = [];

  /** Creates a runner for `vm`; nothing runs until `run`. */
  constructor(deps: RunnerDeps, vm: RunnerVm) {
    this.#deps = deps;
    this.#vm = vm;
    this.#log = deps.logger.child("runner", {
      virtualmachine: `${vm.info.namespace}/${vm.info.name}`,
      pod: vm.podName,
    });
    this.#state = initialState(deps.core, vm.info);
    this.#health = newHealthRecord(deps.clock.now());
  }

  /** The current core state (read-only). */
  get state(): State {
    return this.#state;
  }

  /** The VM as last told. */
  get vm(): RunnerVm {
    return this.#vm;
  }

  /** Health record (failures and monitor contact). */
  get health(): HealthRecord {
    return this.#health;
  }

  /** Why the runner is stuck at `nowMs`; empty when healthy. */
  stuckReasons(nowMs: number): string[] {
    return stuckReasons(this.#health, this.#deps.config, nowMs);
  }

  /** The VM object changed (bounds, config, revision); usage stays the agent's own. */
  updateVm(vm: RunnerVm): void {
    this.#vm = vm;
    this.#apply((s) => vmUpdated(s, vm.info));
    this.#revisionApplied(vm.info.currentRevision?.value);
  }

  /** Observes the scaling latency of every pending target revision up to `applied`. */
  #revisionApplied(applied: number | undefined): void {
    if (applied === undefined || this.#pendingRevisions.length === 0) return;
    const now = this.#deps.clock.now();
    this.#pendingRevisions = this.#pendingRevisions.filter((r) => {
      if (r.value > applied) return true;
      this.#deps.metrics.latency.scaling.observe(
        { direction: directionOfFlags(r.flags) },
        (now - r.atMs) / 1000,
      );
      return false;
    });
  }

  /** Data for the state dump. */
  dump(): RunnerDump {
    return {
      podIP: this.#vm.podIP,
      executorState: this.#state,
      monitor: { waitersSize: this.#conn?.waiters ?? 0, connected: this.#conn !== undefined },
      backgroundWorkerCount: this.#workers,
    };
  }

  #apply(fn: (s: State) => State): void {
    this.#setState(fn(this.#state));
    this.#dirty = true;
    this.#changed?.();
  }

  /** Replaces the core state, noting a new target revision for the scaling latency metric. */
  #setState(next: State): void {
    const before = this.#state.targetRevision.value;
    this.#state = next;
    const rev = next.targetRevision;
    if (rev.value > before) {
      // Bounded: a VM whose controller never reports revisions must not grow this list.
      if (this.#pendingRevisions.length >= 32) this.#pendingRevisions.shift();
      this.#pendingRevisions.push({
        value: rev.value,
        flags: rev.flags,
        atMs: this.#deps.clock.now(),
      });
    }
  }

  /** Runs every loop until the signal aborts; rejects only on a bug (a "panic"). */
  async run(signal: AbortSignal): Promise<void> {
    await using tg = new TaskGroup(signal);
    this.#unsubscribe = this.#deps.scheduler.subscribe(() => this.#apply(schedulerChanged));
    try {
      const spawn = (name: string, fn: (s: AbortSignal) => Promise<void>) => {
        this.#workers++;
        tg.spawn(name, async (s) => {
          try {
            await fn(s);
          } finally {
            this.#workers--;
          }
        });
      };
      spawn("decide", (s) => this.#decisionLoop(s, spawn));
      spawn("system-metrics", (s) => this.#metricsLoop(s, "system"));
      spawn("lfc-metrics", (s) => this.#metricsLoop(s, "lfc"));
      spawn("monitor", (s) => this.#monitorLoop(s));
      await new Promise<void>((resolve) => {
        if (tg.signal.aborted) return resolve();
        tg.signal.addEventListener("abort", () => resolve(), { once: true });
      });
      await tg.wait();
    } finally {
      this.#unsubscribe?.();
      this.#conn?.close("runner stopped");
    }
  }

  // ------------------------------------------------------------------------------------------
  // Decisions and executors

  async #decisionLoop(
    signal: AbortSignal,
    spawn: (name: string, fn: (s: AbortSignal) => Promise<void>) => void,
  ): Promise<void> {
    const clock = this.#deps.clock;
    while (!signal.aborted) {
      let waitMs: number | undefined;
      if (this.#dirty) {
        this.#dirty = false;
        waitMs = this.#decideAndDispatch(spawn);
      }
      if (this.#dirty) continue;
      const changed = new Promise<void>((resolve) => (this.#changed = resolve));
      const ctl = new AbortController();
      const onAbort = () => ctl.abort(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      const timer = waitMs === undefined
        ? new Promise<void>(() => {})
        : clock.sleep(waitMs, ctl.signal)
          .then(() => {
            this.#dirty = true;
          }, () => undefined);
      await Promise.race([
        changed,
        timer,
        new Promise<void>((r) => ctl.signal.addEventListener("abort", () => r())),
      ]);
      ctl.abort();
      signal.removeEventListener("abort", onAbort);
      this.#changed = undefined;
    }
  }

  #decideAndDispatch(
    spawn: (name: string, fn: (s: AbortSignal) => Promise<void>) => void,
  ): number | undefined {
    const now = this.#deps.clock.now();
    const d = decide(this.#state, now);
    this.#setState(d.state);
    this.#deps.metrics.nextActions.inc();
    this.#reportGoal(d.goal, now);
    const a: Actions = d.actions;
    if (a.pluginRequest) {
      const action = a.pluginRequest;
      const jitter = this.#deps.random() * 100;
      this.#state = pluginRequestStarted(this.#state, action, now, jitter);
      const gen = this.#state.plugin.generation;
      spawn("plugin-request", (s) => this.#doPlugin(action, gen, s));
    }
    if (a.neonvmRequest) {
      const action = a.neonvmRequest;
      this.#state = neonvmRequestStarted(this.#state, action);
      this.#reportActual(action, now);
      spawn("neonvm-request", (s) => this.#doNeonVm(action, s));
    }
    if (a.monitorUpscale) {
      const action = a.monitorUpscale;
      this.#state = monitorRequestStarted(this.#state, "upscale", action);
      const gen = this.#state.monitor.generation;
      spawn("monitor-upscale", (s) => this.#doMonitor("upscale", action, gen, s));
    } else if (a.monitorDownscale) {
      const action = a.monitorDownscale;
      this.#state = monitorRequestStarted(this.#state, "downscale", action);
      const gen = this.#state.monitor.generation;
      spawn("monitor-downscale", (s) => this.#doMonitor("downscale", action, gen, s));
    }
    return a.wait?.durationMs;
  }

  #vmLabels() {
    return {
      vm_namespace: this.#vm.info.namespace,
      vm_name: this.#vm.info.name,
      endpoint_id: this.#vm.endpointId ?? "",
      project_id: this.#vm.projectId ?? "",
    };
  }

  #reportGoal(goal: ReturnType<typeof decide>["goal"], now: number): void {
    const cfg = this.#deps.config.scalingEvents;
    const labels = this.#vmLabels();
    const g = this.#deps.metrics.vmDesiredCu;
    g.set({ ...labels, component: "total" }, goal.goalCu * cfg.cuMultiplier);
    g.set({ ...labels, component: "cpu" }, (goal.parts.cpu ?? 0) * cfg.cuMultiplier);
    g.set({ ...labels, component: "mem" }, (goal.parts.mem ?? 0) * cfg.cuMultiplier);
    g.set({ ...labels, component: "lfc" }, (goal.parts.lfc ?? 0) * cfg.cuMultiplier);
    const ev = hypotheticalEvent(
      goal,
      this.#state.using,
      this.#deps.core.computeUnit,
      cfg.cuMultiplier,
      cfg.rereportThreshold,
      this.#lastHypothetical,
    );
    if (ev === undefined) return;
    this.#lastHypothetical = ev.next;
    this.#deps.events.report({
      timestamp: new Date(now).toISOString(),
      region: cfg.regionName,
      endpoint_id: this.#vm.endpointId ?? "",
      kind: "hypothetical",
      current_cu: milliCu(ev.currentCu, cfg.cuMultiplier),
      target_cu: milliCu(ev.next.targetCu, cfg.cuMultiplier),
      goalComponents: ev.next.parts,
    });
  }

  #reportActual(a: NeonVmRequestAction, now: number): void {
    const cu = this.#deps.core.computeUnit;
    const cur = wholeCu(a.current, cu);
    const tgt = wholeCu(a.target, cu);
    if (cur === undefined || tgt === undefined) return;
    const cfg = this.#deps.config.scalingEvents;
    this.#deps.events.report({
      timestamp: new Date(now).toISOString(),
      region: cfg.regionName,
      endpoint_id: this.#vm.endpointId ?? "",
      kind: "actual",
      current_cu: milliCu(cur, cfg.cuMultiplier),
      target_cu: milliCu(tgt, cfg.cuMultiplier),
    });
  }

  async #doPlugin(a: PluginRequestAction, gen: number, signal: AbortSignal): Promise<void> {
    const { clock, config, metrics } = this.#deps;
    const sched = this.#deps.scheduler.current;
    const started = clock.now();
    const direction = directionOfFlags(a.targetRevision.flags);
    if (sched === undefined) {
      metrics.pluginRequests.inc({ code: "[no scheduler]" });
      this.#log.warn("no scheduler to ask for a permit");
      this.#schedulerFailed(gen);
      return;
    }
    const url = `http://${urlHost(sched.ip)}:${config.scheduler.requestPort}/`;
    try {
      // Why (fix of a reference slip, §11): the reference times permit requests out after the
      // NeonVM timeout (10 s); the scheduler's own timeout is the one meant for them.
      const resp = await requestPermit(
        this.#deps.fetch,
        url,
        {
          pod: { namespace: this.#vm.info.namespace, name: this.#vm.podName },
          computeUnit: this.#deps.core.computeUnit,
          resources: a.target,
          lastPermit: a.lastPermit,
          metrics: a.metrics,
        },
        config.scheduler.requestTimeoutSeconds * 1000,
        signal,
      );
      metrics.pluginRequests.inc({ code: "200" });
      metrics.latency.plugin.observe({ direction }, (clock.now() - started) / 1000);
      const using = this.#state.using;
      metrics.pluginChange(using, a.target, resp.permit);
      const r = pluginRequestSucceeded(
        this.#state,
        gen,
        resp.permit,
        resp.migrate !== undefined && resp.migrate !== null,
        clock.now(),
      );
      if (!r.check.ok) {
        this.#log.warn("permit rejected", { error: r.check.error, permit: resp.permit });
        if (gen === this.#state.plugin.generation) {
          this.#health = {
            ...this.#health,
            failedSchedulerMs: recordFailure(this.#health.failedSchedulerMs, clock.now()),
          };
        }
      } else if (resp.permit.vCPUs < a.target.vCPUs || resp.permit.mem < a.target.mem) {
        // Denied or partial: counts towards "stuck" as the reference does.
        this.#health = {
          ...this.#health,
          failedSchedulerMs: recordFailure(this.#health.failedSchedulerMs, clock.now()),
        };
      }
      this.#apply(() => r.state);
    } catch (error) {
      if (signal.aborted) return;
      const status = (error as { status?: number }).status;
      metrics.pluginRequests.inc({ code: status ? String(status) : "[error]" });
      this.#log.warn("permit request failed", {
        error: errorChainMessage(error),
        scheduler: sched.name,
      });
      this.#schedulerFailed(gen);
    }
  }

  #schedulerFailed(gen: number): void {
    const now = this.#deps.clock.now();
    if (gen === this.#state.plugin.generation) {
      this.#health = {
        ...this.#health,
        failedSchedulerMs: recordFailure(this.#health.failedSchedulerMs, now),
      };
    }
    this.#apply((s) => pluginRequestFailed(s, gen, now));
  }

  async #doNeonVm(a: NeonVmRequestAction, signal: AbortSignal): Promise<void> {
    const { clock, config, metrics } = this.#deps;
    const started = clock.now();
    metrics.neonvmChange(a.current, a.target);
    try {
      const ops = neonvmPatchOps(a.target, this.#vm.info.slotSizeBytes, a.targetRevision, started);
      using d = deadline(signal, config.neonvm.requestTimeoutSeconds * 1000, "NeonVM patch");
      await this.#deps.patchVm(this.#vm.info.namespace, this.#vm.info.name, ops, d.signal);
      metrics.neonvmOutbound.inc({ result: "ok" });
      metrics.latency.neonvm.observe(
        { direction: directionOfFlags(a.targetRevision.flags) },
        (clock.now() - started) / 1000,
      );
      this.#log.info("patched VirtualMachine", { current: a.current, target: a.target });
      this.#apply(neonvmRequestSucceeded);
    } catch (error) {
      if (signal.aborted) return;
      const root = rootCause(error);
      metrics.neonvmOutbound.inc({ result: `[error: ${root}]` });
      this.#log.warn("NeonVM patch failed", { error: errorChainMessage(error) });
      const now = clock.now();
      this.#health = {
        ...this.#health,
        failedNeonVmMs: recordFailure(this.#health.failedNeonVmMs, now),
      };
      this.#apply((s) => neonvmRequestFailed(s, now));
    }
  }

  async #doMonitor(
    kind: "upscale" | "downscale",
    a: MonitorAction,
    gen: number,
    signal: AbortSignal,
  ): Promise<void> {
    const { clock, metrics } = this.#deps;
    const endpoint = kind === "upscale" ? "UpscaleNotification" : "DownscaleRequest";
    const conn = this.#conn;
    const started = clock.now();
    try {
      if (conn === undefined) throw new Error("no monitor connection");
      if (kind === "upscale") {
        await conn.upscale(a.target, signal);
        metrics.monitorOutbound.inc({ endpoint, code: "ok" });
        metrics.monitorChange(a.current, a.target, true);
        this.#monitorContact();
        this.#apply((s) => monitorUpscaleSucceeded(s, gen, clock.now()));
      } else {
        const r = await conn.downscale(a.target, signal);
        metrics.monitorOutbound.inc({ endpoint, code: r.ok ? "ok" : "denied" });
        metrics.monitorChange(a.current, a.target, r.ok);
        this.#monitorContact();
        if (!r.ok) {
          this.#log.info("monitor denied downscale", { status: r.status, target: a.target });
        }
        this.#apply((s) => monitorDownscaleResult(s, gen, r.ok, clock.now()));
      }
      metrics.latency.monitor.observe(
        { direction: kind === "upscale" ? "inc" : "dec" },
        (clock.now() - started) / 1000,
      );
    } catch (error) {
      if (signal.aborted) return;
      metrics.monitorOutbound.inc({ endpoint, code: "[error]" });
      this.#log.warn("monitor request failed", { kind, error: errorChainMessage(error) });
      const now = clock.now();
      if (gen === this.#state.monitor.generation) {
        this.#health = {
          ...this.#health,
          failedMonitorMs: recordFailure(this.#health.failedMonitorMs, now),
        };
      }
      this.#apply((s) => monitorRequestFailed(s, gen, now));
    }
  }

  #monitorContact(): void {
    this.#health = { ...this.#health, lastSuccessfulMonitorCommMs: this.#deps.clock.now() };
  }

  // ------------------------------------------------------------------------------------------
  // Metrics scrapes

  async #metricsLoop(signal: AbortSignal, kind: "system" | "lfc"): Promise<void> {
    const { clock, config } = this.#deps;
    const c = kind === "system" ? config.metrics.system : config.metrics.lfc;
    const periodMs = c.secondsBetweenRequests * 1000;
    await sleepOrStop(clock, this.#deps.random() * periodMs, signal);
    while (!signal.aborted) {
      const enabled = kind === "system" || scalingConfig(this.#state).enableLFCMetrics;
      if (enabled) await this.#scrapeOnce(kind, c.port, c.requestTimeoutSeconds * 1000, signal);
      await sleepOrStop(clock, periodMs, signal);
    }
  }

  async #scrapeOnce(
    kind: "system" | "lfc",
    port: number,
    timeoutMs: number,
    signal: AbortSignal,
  ): Promise<void> {
    const url = `http://${urlHost(this.#vm.podIP)}:${port}/metrics`;
    let text: string;
    try {
      text = await fetchText(this.#deps.fetch, url, timeoutMs, signal);
    } catch (error) {
      if (signal.aborted) return;
      this.#log.warn("metrics scrape failed", { kind, url, error: errorChainMessage(error) });
      return;
    }
    const parsed = parsePromText(text);
    const now = this.#deps.clock.now();
    if (kind === "system") {
      const m = extractSystemMetrics(parsed);
      if (!m.ok) {
        this.#log.warn("system metrics unusable", { error: m.error, badLines: parsed.badLines });
        return;
      }
      this.#apply((s) => systemMetricsUpdated(s, m.value, now));
    } else {
      const m = extractLfcMetrics(parsed);
      if (!m.ok) {
        this.#log.warn("LFC metrics unusable", { error: m.error, badLines: parsed.badLines });
        return;
      }
      this.#apply((s) => lfcMetricsUpdated(s, m.value, now));
    }
  }

  // ------------------------------------------------------------------------------------------
  // Monitor connection

  async #monitorLoop(signal: AbortSignal): Promise<void> {
    const { clock, config, metrics } = this.#deps;
    const m = config.monitor;
    const minWaitMs = m.connectionRetryMinWaitSeconds * 1000;
    while (!signal.aborted) {
      const startedMs = clock.now();
      const url = `ws://${urlHost(this.#vm.podIP)}:${m.serverPort}${MONITOR_PATH}`;
      let conn: MonitorConnection | undefined;
      try {
        conn = await MonitorConnection.open({
          url,
          connectTimeoutMs: m.connectionTimeoutSeconds * 1000,
          responseTimeoutMs: m.responseTimeoutSeconds * 1000,
          logger: this.#log.child("monitor"),
          onUpscaleRequest: () => {
            this.#log.info("monitor requested upscale");
            this.#apply((s) => monitorUpscaleRequested(s, clock.now()));
          },
          onInbound: (endpoint, code) => metrics.monitorInbound.inc({ endpoint, code }),
          signal,
        });
      } catch (error) {
        if (signal.aborted) return;
        this.#log.warn("cannot connect to monitor", { url, error: errorChainMessage(error) });
      }
      if (conn !== undefined) {
        this.#conn = conn;
        this.#monitorContact();
        this.#log.info("connected to monitor", { url });
        this.#apply(monitorConnected);
        await this.#healthChecks(conn, signal);
        conn.close("internal error: reconnecting");
        this.#conn = undefined;
        this.#apply(monitorDisconnected);
        if (signal.aborted) return;
      }
      const livedMs = clock.now() - startedMs;
      if (livedMs < minWaitMs) await sleepOrStop(clock, minWaitMs - livedMs, signal);
    }
  }

  /** Health-checks every 5 s until the connection closes or fails checks for too long. */
  async #healthChecks(conn: MonitorConnection, signal: AbortSignal): Promise<void> {
    const { clock, config } = this.#deps;
    const maxFailMs = config.monitor.maxHealthCheckSequentialFailuresSeconds * 1000;
    let firstFailureMs: number | undefined;
    let closed = false;
    const closedP = conn.closed.then(() => {
      closed = true;
    });
    while (!signal.aborted && !closed) {
      const ctl = new AbortController();
      const stop = () => ctl.abort();
      signal.addEventListener("abort", stop, { once: true });
      await Promise.race([
        closedP,
        clock.sleep(HEALTH_CHECK_PERIOD_MS, ctl.signal).catch(() => undefined),
      ]);
      ctl.abort();
      signal.removeEventListener("abort", stop);
      if (closed || signal.aborted) return;
      try {
        await conn.healthCheck(signal);
        firstFailureMs = undefined;
        this.#monitorContact();
        this.#deps.metrics.monitorOutbound.inc({ endpoint: "HealthCheck", code: "ok" });
      } catch (error) {
        if (signal.aborted || closed) return;
        this.#deps.metrics.monitorOutbound.inc({ endpoint: "HealthCheck", code: "[error]" });
        const now = clock.now();
        firstFailureMs ??= now;
        this.#log.warn("monitor health check failed", { error: errorChainMessage(error) });
        if (now - firstFailureMs > maxFailMs) {
          this.#log.warn("monitor failed health checks for too long; reconnecting");
          return;
        }
      }
    }
  }
}

function rootCause(err: unknown): string {
  let cur = err;
  for (let i = 0; i < 8 && cur instanceof Error && cur.cause !== undefined; i++) cur = cur.cause;
  return cur instanceof Error ? cur.message : String(cur);
}

/** Sleeps, returning early (without throwing) when the signal aborts. */
async function sleepOrStop(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return;
  try {
    await clock.sleep(ms, signal);
  } catch (e) {
    if (!signal.aborted) throw e;
  }
}

/** GET `url` and return its body, bounded in size and time; non-200 is an error. */
export async function fetchText(
  fetchFn: (req: Request) => Promise<Response>,
  url: string,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<string> {
  using d = deadline(signal, timeoutMs, `GET ${url}`);
  const res = await fetchFn(new Request(url, { signal: d.signal }));
  if (res.status !== 200) {
    await res.body?.cancel();
    throw new Error(`GET ${url} answered ${res.status}`);
  }
  const reader = res.body?.getReader();
  if (reader === undefined) return "";
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > MAX_SCRAPE_BYTES) {
      await reader.cancel();
      throw new Error(`GET ${url}: body larger than ${MAX_SCRAPE_BYTES} bytes`);
    }
    chunks.push(value);
  }
  const all = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    all.set(c, off);
    off += c.byteLength;
  }
  return new TextDecoder("utf-8", { fatal: false }).decode(all);
}
