/**
 * The monitor's stateful shell: owns the core state, feeds it samples, applies the sizes it decides
 * (LFC first, then cgroup limits, as the reference does), answers agent requests, and emits
 * `UpscaleRequest`s through whichever connection is current. Requests are handled one at a time.
 * Must not parse frames or touch sockets (that is `server.ts`), and must not decide (`../core/`).
 * @module
 */
import type { AgentMessage, Allocation, MonitorMessage } from "../../api/monitor_protocol.ts";
import { createIdMinter } from "../../api/monitor_protocol.ts";
import type { Clock } from "../../lib/clock.ts";
import { errorChainMessage } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import {
  applied,
  checkUpscaleRequest,
  decideDownscale,
  describeSizing,
  initialState,
  type MonitorCoreConfig,
  type MonitorState,
  onSample,
  planUpscale,
  upscaleRequestSent,
} from "../core/monitor_core.ts";
import { type Sizing, sizingFor, targetSizing, toMiB } from "../core/sizing.ts";
import { summarize } from "../core/memory_window.ts";
import type { CgroupReading, WorkloadCgroup } from "./cgroup.ts";
import type { FileCache } from "./file_cache.ts";

/** Sends one frame to the agent; returns false when the connection is gone. */
export type SendToAgent = (msg: MonitorMessage) => boolean;

/** Collaborators of {@linkcode MonitorService}. */
export interface MonitorServiceDeps {
  /** Decision constants and what is managed. */
  readonly config: MonitorCoreConfig;
  /** The workload cgroup, when managed. */
  readonly cgroup?: WorkloadCgroup;
  /** The Postgres LFC, when managed. */
  readonly fileCache?: FileCache;
  /** Time source. */
  readonly clock: Clock;
  /** Logger. */
  readonly logger: Logger;
}

/** Counters for tests, benchmarks and logs. */
export interface MonitorStats {
  /** Samples recorded. */
  samples: number;
  /** Failed sample reads. */
  sampleErrors: number;
  /** `UpscaleRequest`s sent. */
  upscaleRequests: number;
  /** Requests handled, by type. */
  handled: Record<string, number>;
}

/** The monitor's state and its effects. */
export class MonitorService {
  readonly #cfg: MonitorCoreConfig;
  readonly #cgroup: WorkloadCgroup | undefined;
  readonly #fileCache: FileCache | undefined;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #mintId = createIdMinter("monitor");
  #state: MonitorState;
  #sender: SendToAgent | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  /** Counters. */
  readonly stats: MonitorStats = { samples: 0, sampleErrors: 0, upscaleRequests: 0, handled: {} };

  /** Creates the service; call {@linkcode start} before use. */
  constructor(deps: MonitorServiceDeps, systemMemBytes: number) {
    this.#cfg = deps.config;
    this.#cgroup = deps.cgroup;
    this.#fileCache = deps.fileCache;
    this.#clock = deps.clock;
    this.#log = deps.logger;
    this.#state = initialState(deps.config, systemMemBytes, deps.clock.now());
  }

  /** The current core state (read-only snapshot). */
  get state(): MonitorState {
    return this.#state;
  }

  /** Applies the start-up sizing (from the guest's MemTotal), as the reference does at start. */
  async start(): Promise<void> {
    const s = await this.#apply(this.#state.sizing);
    this.#log.info("applied initial sizing", { sizing: s });
  }

  /** Makes `send` the connection that receives `UpscaleRequest`s; returns a detach function. */
  attach(send: SendToAgent): () => void {
    this.#sender = send;
    return () => {
      if (this.#sender === send) this.#sender = undefined;
    };
  }

  /** Records a sample taken now and sends an `UpscaleRequest` when one is due. */
  recordSample(reading: CgroupReading): void {
    const now = this.#clock.now();
    this.stats.samples++;
    this.#state = onSample(this.#state, { atMs: now, ...reading });
    const check = checkUpscaleRequest(this.#cfg, this.#state, now);
    if (!check.due || this.#sender === undefined) return;
    const id = this.#mintId();
    if (this.#sender({ type: "UpscaleRequest", id })) {
      this.#state = upscaleRequestSent(this.#state, now);
      this.stats.upscaleRequests++;
      this.#log.info("requested upscale", {
        id,
        avgNonReclaimableMiB: toMiB(check.avgBytes),
        thresholdMiB: toMiB(check.thresholdBytes),
      });
    }
  }

  /** Counts a failed sample read (the window simply gets no new sample). */
  recordSampleError(error: unknown): void {
    this.stats.sampleErrors++;
    this.#log.warn("cannot read cgroup memory", { error });
  }

  /**
   * Handles one request from the agent, strictly after the previous one finished. Returns the
   * reply, or undefined for messages that get none (`InvalidMessage` / `InternalError`).
   */
  handle(msg: AgentMessage): Promise<MonitorMessage | undefined> {
    const run = this.#queue.then(() => this.#handleNow(msg));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #handleNow(msg: AgentMessage): Promise<MonitorMessage | undefined> {
    this.stats.handled[msg.type] = (this.stats.handled[msg.type] ?? 0) + 1;
    switch (msg.type) {
      case "HealthCheck":
        return { type: "HealthCheck", id: msg.id };
      case "InvalidMessage":
      case "InternalError":
        this.#log.warn("agent reported an error about our message", {
          type: msg.type,
          id: msg.id,
          error: msg.content.error,
        });
        return undefined;
      case "DownscaleRequest":
        return await this.#guard(msg.id, () => this.#downscale(msg.id, msg.content.target));
      case "UpscaleNotification":
        return await this.#guard(msg.id, () => this.#upscale(msg.id, msg.content.granted));
    }
  }

  async #guard(id: number, fn: () => Promise<MonitorMessage>): Promise<MonitorMessage> {
    try {
      return await fn();
    } catch (error) {
      this.#log.warn("error handling request", { id, error });
      return { type: "InternalError", error: errorChainMessage(error), id };
    }
  }

  async #downscale(id: number, target: Allocation): Promise<MonitorMessage> {
    const now = this.#clock.now();
    const decision = decideDownscale(this.#cfg, this.#state, target.mem, now);
    const summary = summarize(this.#state.window);
    this.#log.info("downscale decision", {
      id,
      targetMemMiB: toMiB(target.mem),
      avgNonReclaimableMiB: toMiB(summary.avgNonReclaimableBytes),
      samples: summary.count,
      decision: decision.kind,
    });
    switch (decision.kind) {
      case "approve_unmanaged":
        return { type: "DownscaleResult", Ok: true, Status: decision.status, id };
      case "deny":
        return { type: "DownscaleResult", Ok: false, Status: decision.status, id };
      case "error":
        return { type: "InternalError", error: decision.error, id };
      case "approve": {
        const done = await this.#apply(decision.target);
        return { type: "DownscaleResult", Ok: true, Status: describeSizing(this.#cfg, done), id };
      }
    }
  }

  async #upscale(id: number, granted: Allocation): Promise<MonitorMessage> {
    const target = planUpscale(this.#cfg, granted.mem);
    const done = await this.#apply(target);
    this.#log.info("applied upscale", { id, grantedMemMiB: toMiB(granted.mem), sizing: done });
    return { type: "UpscaleConfirmation", id };
  }

  /** Applies a sizing: LFC first (Postgres may cap it), then limits computed from what was set. */
  async #apply(target: Sizing): Promise<Sizing> {
    let sizing = target;
    if (this.#cfg.managed.lfc && this.#fileCache !== undefined) {
      const actual = await this.#fileCache.setSizeBytes(target.lfcBytes);
      if (actual !== target.lfcBytes) {
        sizing = sizingFor(this.#cfg.sizing, this.#cfg.managed, target.usableBytes, actual);
      }
    }
    if (
      this.#cgroup !== undefined && sizing.memoryHighBytes !== undefined &&
      sizing.memoryMaxBytes !== undefined
    ) {
      await this.#cgroup.setLimits(sizing.memoryHighBytes, sizing.memoryMaxBytes);
    }
    this.#state = applied(this.#state, sizing);
    return sizing;
  }

  /** The sizing the service would aim for at `usableBytes` (for logs and tests). */
  targetFor(usableBytes: number): Sizing {
    return targetSizing(this.#cfg.sizing, this.#cfg.managed, usableBytes);
  }
}
