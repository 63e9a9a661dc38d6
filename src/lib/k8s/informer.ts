/**
 * A watch cache (informer): lists, then watches from the list's resourceVersion, keeps a store by
 * `namespace/name`, delivers add/update/delete events, resyncs periodically and reports `synced`.
 * Its list and watch functions are parameters, so tests drive it with hand-written fakes. On 410
 * Gone or any watch error it relists and delivers the difference. It never writes to the API.
 * @module
 */
import type { Clock } from "../clock.ts";
import { errorChainMessage } from "../errors.ts";
import type { Logger } from "../log.ts";
import { isGone, type ListResult, type WatchEvent } from "./client.ts";
import type { ObjectLike } from "./meta.ts";

/** Lists every object; the result's resourceVersion starts the watch. */
export type ListFn<T> = (signal: AbortSignal) => Promise<ListResult<T>>;
/** Watches from a resourceVersion until the stream ends, throws, or the signal aborts. */
export type WatchFn<T> = (resourceVersion: string, signal: AbortSignal) => AsyncIterable<
  WatchEvent<T>
>;

/** A change delivered to subscribers. `resync` re-delivers an unchanged object. */
export type InformerEvent<T> =
  | { readonly type: "add"; readonly key: string; readonly object: T }
  | { readonly type: "update"; readonly key: string; readonly object: T; readonly old: T }
  | { readonly type: "resync"; readonly key: string; readonly object: T }
  | { readonly type: "delete"; readonly key: string; readonly object: T };

/** Options for {@linkcode Informer}. */
export interface InformerOptions<T> {
  /** Lists every object. */
  list: ListFn<T>;
  /** Watches from a resourceVersion. */
  watch: WatchFn<T>;
  /** Time source for retry and resync waits. */
  clock: Clock;
  /** Logger for watch errors and unparseable objects. */
  logger: Logger;
  /** Re-deliver every object this often as `resync`; 0 disables; default 0. */
  resyncMs?: number;
  /** Wait before relisting after an error; default 1000 ms. */
  retryMs?: number;
}

/** `namespace/name`, or `name` for cluster-scoped objects. */
export function objectKey(obj: ObjectLike): string {
  const ns = obj.metadata?.namespace;
  const name = obj.metadata?.name ?? "";
  return ns ? `${ns}/${name}` : name;
}

/** A cache of one resource kept up to date from list + watch. */
export class Informer<T extends ObjectLike> {
  readonly #opts: InformerOptions<T>;
  readonly #store = new Map<string, T>();
  readonly #handlers = new Set<(ev: InformerEvent<T>) => void>();
  #synced = false;
  #syncWaiters: (() => void)[] = [];
  #lastResourceVersion = "";

  /** Creates an informer; nothing happens until `run`. */
  constructor(options: InformerOptions<T>) {
    this.#opts = options;
  }

  /** True once the first list has been delivered. */
  get synced(): boolean {
    return this.#synced;
  }

  /** The resourceVersion of the last list or event seen. */
  get resourceVersion(): string {
    return this.#lastResourceVersion;
  }

  /** Returns the cached object with this key (`namespace/name`), if any. */
  get(key: string): T | undefined {
    return this.#store.get(key);
  }

  /** Returns every cached object. */
  list(): T[] {
    return [...this.#store.values()];
  }

  /** Returns every cached key. */
  keys(): string[] {
    return [...this.#store.keys()];
  }

  /** Registers a synchronous handler; returns a function that removes it. */
  subscribe(handler: (ev: InformerEvent<T>) => void): () => void {
    this.#handlers.add(handler);
    return () => this.#handlers.delete(handler);
  }

  /** Resolves once synced, or rejects when the signal aborts first. */
  waitForSync(signal?: AbortSignal): Promise<void> {
    if (this.#synced) return Promise.resolve();
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const done = () => resolve();
      this.#syncWaiters.push(done);
      signal?.addEventListener("abort", () => {
        this.#syncWaiters = this.#syncWaiters.filter((w) => w !== done);
        reject(signal.reason);
      }, { once: true });
    });
  }

  #emit(ev: InformerEvent<T>): void {
    for (const h of this.#handlers) h(ev);
  }

  #applyList(result: ListResult<T>): void {
    const seen = new Set<string>();
    for (const obj of result.items) {
      const key = objectKey(obj);
      seen.add(key);
      const old = this.#store.get(key);
      this.#store.set(key, obj);
      if (old === undefined) this.#emit({ type: "add", key, object: obj });
      else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion) {
        this.#emit({ type: "update", key, object: obj, old });
      }
    }
    for (const bad of result.invalid) {
      const key = bad.namespace ? `${bad.namespace}/${bad.name}` : bad.name;
      // An unparseable object changes nothing: the last good copy (if any) stays.
      seen.add(key);
      this.#opts.logger.warn("object does not parse; keeping last good copy", {
        key,
        error: bad.error,
      });
    }
    for (const [key, old] of [...this.#store]) {
      if (seen.has(key)) continue;
      this.#store.delete(key);
      this.#emit({ type: "delete", key, object: old });
    }
    this.#lastResourceVersion = result.resourceVersion;
    if (!this.#synced) {
      this.#synced = true;
      const waiters = this.#syncWaiters;
      this.#syncWaiters = [];
      for (const w of waiters) w();
    }
  }

  #applyEvent(ev: WatchEvent<T>): void {
    switch (ev.type) {
      case "BOOKMARK":
        if (ev.resourceVersion) this.#lastResourceVersion = ev.resourceVersion;
        return;
      case "INVALID": {
        const bad = ev.object;
        const key = bad.namespace ? `${bad.namespace}/${bad.name}` : bad.name;
        if (bad.resourceVersion) this.#lastResourceVersion = bad.resourceVersion;
        const old = this.#store.get(key);
        if (ev.eventType === "DELETED" && old !== undefined) {
          this.#store.delete(key);
          this.#emit({ type: "delete", key, object: old });
          return;
        }
        this.#opts.logger.warn("object does not parse; keeping last good copy", {
          key,
          error: bad.error,
        });
        return;
      }
      case "ADDED":
      case "MODIFIED": {
        const key = objectKey(ev.object);
        const rv = ev.object.metadata?.resourceVersion;
        if (rv) this.#lastResourceVersion = rv;
        const old = this.#store.get(key);
        this.#store.set(key, ev.object);
        if (old === undefined) this.#emit({ type: "add", key, object: ev.object });
        else this.#emit({ type: "update", key, object: ev.object, old });
        return;
      }
      case "DELETED": {
        const key = objectKey(ev.object);
        const rv = ev.object.metadata?.resourceVersion;
        if (rv) this.#lastResourceVersion = rv;
        const old = this.#store.get(key);
        this.#store.delete(key);
        if (old !== undefined) this.#emit({ type: "delete", key, object: ev.object });
        return;
      }
    }
  }

  /** Re-delivers every cached object as a `resync` event. */
  resync(): void {
    for (const [key, object] of this.#store) this.#emit({ type: "resync", key, object });
  }

  /** Lists and watches until the signal aborts; errors are logged and followed by a relist. */
  async run(signal: AbortSignal): Promise<void> {
    const retryMs = this.#opts.retryMs ?? 1000;
    const resyncMs = this.#opts.resyncMs ?? 0;
    const log = this.#opts.logger;
    let resyncLoop: Promise<void> | undefined;
    if (resyncMs > 0) {
      resyncLoop = (async () => {
        while (!signal.aborted) {
          try {
            await this.#opts.clock.sleep(resyncMs, signal);
          } catch {
            return; // Aborted: the informer is stopping.
          }
          this.resync();
        }
      })();
    }
    let needList = true;
    while (!signal.aborted) {
      try {
        if (needList) {
          this.#applyList(await this.#opts.list(signal));
          needList = false;
        }
        let events = 0;
        for await (const ev of this.#opts.watch(this.#lastResourceVersion, signal)) {
          if (signal.aborted) break;
          events++;
          this.#applyEvent(ev);
        }
        // The stream ended (server timeout): watch again from the last resourceVersion, after a
        // pause when it ended without a single event so a closing server cannot make us spin.
        if (events === 0 && !signal.aborted) await this.#opts.clock.sleep(retryMs, signal);
      } catch (error) {
        if (signal.aborted) break;
        needList = true;
        if (isGone(error)) {
          log.info("watch expired; relisting", { resourceVersion: this.#lastResourceVersion });
          continue;
        }
        log.warn("list/watch failed; relisting", { error: errorChainMessage(error) });
        try {
          await this.#opts.clock.sleep(retryMs, signal);
        } catch {
          break; // Aborted while waiting.
        }
      }
    }
    await resyncLoop;
  }
}
