/**
 * A keyed work queue for controllers: each key is handled by at most one worker at a time, adds
 * while a key is being handled rerun it once afterwards, delayed adds keep the earliest deadline,
 * and a failing handler is retried with per-key exponential backoff. It knows nothing about
 * Kubernetes objects; it only schedules calls of the handler.
 * @module
 */
import type { Clock } from "../clock.ts";
import type { Logger } from "../log.ts";

/** What a handler wants next for its key. */
export interface HandlerResult {
  /** Handle the key again after this many ms (unless an earlier add comes). */
  requeueAfterMs?: number;
}

/** Handles one key; throwing means "retry with backoff". */
export type KeyHandler = (key: string, signal: AbortSignal) => Promise<HandlerResult | void>;

/** Options for {@linkcode WorkQueue}. */
export interface WorkQueueOptions {
  /** The handler. */
  handler: KeyHandler;
  /** Time source for delays. */
  clock: Clock;
  /** Logger for handler failures. */
  logger: Logger;
  /** Keys handled in parallel (distinct keys only); default 1. */
  concurrency?: number;
  /** First retry delay after a failure; default 100 ms, doubling per failure. */
  baseBackoffMs?: number;
  /** Longest retry delay; default 60 000 ms. */
  maxBackoffMs?: number;
  /** Called after each handler run with its duration and outcome (metrics). */
  onDone?: (key: string, durationMs: number, ok: boolean) => void;
}

/** A deduplicating keyed queue with per-key exclusivity. */
export class WorkQueue {
  readonly #opts: WorkQueueOptions;
  readonly #ready = new Set<string>();
  readonly #active = new Set<string>();
  readonly #dirty = new Set<string>();
  readonly #deadlines = new Map<string, number>();
  readonly #failures = new Map<string, number>();
  #wake: (() => void) | undefined;
  #signal: AbortSignal | undefined;

  /** Creates a queue; nothing runs until `run`. */
  constructor(options: WorkQueueOptions) {
    this.#opts = options;
  }

  /** Number of keys waiting (ready now), for metrics and tests. */
  get length(): number {
    return this.#ready.size;
  }

  /** Keys with failing handlers and their consecutive failure counts. */
  failing(): ReadonlyMap<string, number> {
    return this.#failures;
  }

  /** Queues `key` now; a key being handled runs once more afterwards. */
  add(key: string): void {
    if (this.#active.has(key)) {
      this.#dirty.add(key);
      return;
    }
    this.#ready.add(key);
    this.#deadlines.delete(key);
    this.#poke();
  }

  /** Queues `key` after `delayMs`, unless an earlier add for it is already scheduled. */
  addAfter(key: string, delayMs: number): void {
    if (delayMs <= 0) return this.add(key);
    const at = this.#opts.clock.now() + delayMs;
    const cur = this.#deadlines.get(key);
    if (cur !== undefined && cur <= at) return;
    if (this.#ready.has(key)) return;
    this.#deadlines.set(key, at);
    const signal = this.#signal;
    this.#opts.clock.sleep(delayMs, signal).then(() => {
      if (this.#deadlines.get(key) === at) {
        this.#deadlines.delete(key);
        this.add(key);
      }
    }, () => {/* Aborted: the queue is stopping and the key with it. */});
  }

  #poke(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  #next(): string | undefined {
    for (const key of this.#ready) {
      if (this.#active.has(key)) continue;
      this.#ready.delete(key);
      return key;
    }
    return undefined;
  }

  async #handle(key: string, signal: AbortSignal): Promise<void> {
    const start = this.#opts.clock.now();
    let ok = true;
    let requeueMs: number | undefined;
    try {
      const r = await this.#opts.handler(key, signal);
      this.#failures.delete(key);
      requeueMs = r?.requeueAfterMs;
    } catch (error) {
      ok = false;
      if (signal.aborted) return;
      const n = (this.#failures.get(key) ?? 0) + 1;
      this.#failures.set(key, n);
      const base = this.#opts.baseBackoffMs ?? 100;
      requeueMs = Math.min(this.#opts.maxBackoffMs ?? 60_000, base * 2 ** (n - 1));
      this.#opts.logger.warn("reconcile failed; retrying", { key, failures: n, error });
    } finally {
      this.#active.delete(key);
      this.#opts.onDone?.(key, this.#opts.clock.now() - start, ok);
    }
    if (this.#dirty.delete(key)) this.add(key);
    else if (requeueMs !== undefined) this.addAfter(key, requeueMs);
  }

  /** Runs workers until the signal aborts; returns after in-flight handlers finish. */
  async run(signal: AbortSignal): Promise<void> {
    this.#signal = signal;
    const concurrency = Math.max(1, this.#opts.concurrency ?? 1);
    const inFlight = new Set<Promise<void>>();
    const onAbort = () => this.#poke();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      while (!signal.aborted) {
        const key = inFlight.size < concurrency ? this.#next() : undefined;
        if (key !== undefined) {
          this.#active.add(key);
          const p = this.#handle(key, signal).finally(() => {
            inFlight.delete(p);
            this.#poke();
          });
          inFlight.add(p);
          continue;
        }
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
        });
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      await Promise.allSettled([...inFlight]);
    }
  }
}
