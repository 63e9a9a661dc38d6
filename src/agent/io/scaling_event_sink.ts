/**
 * Where scaling events go: a batching sink that pushes JSON lines every `pushEverySeconds` (or when
 * `maxBatchSize` lines are waiting) to a file (appended) or an HTTP endpoint (POST, body of JSON
 * lines). Stands in for the reference's s3/azureBlob clients, which need object stores this
 * project does not have. Never decides what to report.
 * @module
 */
import { encodeScalingEvent, type ScalingEvent } from "../../api/scaling_event.ts";
import type { Clock } from "../../lib/clock.ts";
import { RemoteError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { deadline } from "./_deadline.ts";

/** Accepts scaling events. */
export interface ScalingEventSink {
  /** Queues one event; never blocks or throws. */
  report(e: ScalingEvent): void;
}

/** A sink that drops everything (no client configured). */
export const discardSink: ScalingEventSink = { report: () => {} };

/** Writes a batch of lines somewhere. */
export type WriteLines = (lines: string[], signal: AbortSignal) => Promise<void>;

/** Appends lines to a file. */
export function fileWriter(path: string): WriteLines {
  return async (lines) => {
    await Deno.writeTextFile(path, lines.map((l) => l + "\n").join(""), {
      append: true,
      create: true,
    });
  };
}

/** POSTs lines as `application/x-ndjson` to `url`. */
export function httpWriter(url: string, timeoutMs: number): WriteLines {
  return async (lines, signal) => {
    using d = deadline(signal, timeoutMs, "scaling events push");
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/x-ndjson" },
      body: lines.map((l) => l + "\n").join(""),
      signal: d.signal,
    });
    await res.body?.cancel();
    if (!res.ok) {
      throw new RemoteError(`scaling events push answered ${res.status}`, { status: res.status });
    }
  };
}

/** Options of {@linkcode BatchingSink}. */
export interface BatchingSinkOptions {
  /** Push interval. */
  pushEveryMs: number;
  /** Lines per push. */
  maxBatchSize: number;
  /** Lines kept while pushes fail; older ones are dropped. */
  maxQueued?: number;
}

/** Queues events and pushes them in batches. */
export class BatchingSink implements ScalingEventSink {
  readonly #write: WriteLines;
  readonly #opts: BatchingSinkOptions;
  readonly #clock: Clock;
  readonly #logger: Logger;
  #queue: string[] = [];
  #wake: (() => void) | undefined;
  /** Lines written so far. */
  written = 0;

  /** Creates a sink writing through `write`. */
  constructor(write: WriteLines, opts: BatchingSinkOptions, clock: Clock, logger: Logger) {
    this.#write = write;
    this.#opts = opts;
    this.#clock = clock;
    this.#logger = logger;
  }

  /** Queues one event. */
  report(e: ScalingEvent): void {
    this.#queue.push(encodeScalingEvent(e));
    const max = this.#opts.maxQueued ?? 100_000;
    if (this.#queue.length > max) this.#queue.splice(0, this.#queue.length - max);
    if (this.#queue.length >= this.#opts.maxBatchSize) this.#wake?.();
  }

  async #flush(signal: AbortSignal): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.slice(0, this.#opts.maxBatchSize);
      try {
        await this.#write(batch, signal);
      } catch (error) {
        this.#logger.warn("cannot push scaling events; will retry", { error });
        return;
      }
      this.#queue.splice(0, batch.length);
      this.written += batch.length;
    }
  }

  /** Pushes until the signal aborts, then flushes what is left. */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const woken = new Promise<void>((resolve) => (this.#wake = resolve));
      const ctl = new AbortController();
      const onAbort = () => ctl.abort();
      signal.addEventListener("abort", onAbort, { once: true });
      await Promise.race([
        woken,
        this.#clock.sleep(this.#opts.pushEveryMs, ctl.signal).catch(() => {}),
      ]);
      ctl.abort();
      signal.removeEventListener("abort", onAbort);
      await this.#flush(signal);
    }
    await this.#flush(new AbortController().signal);
  }
}
