/**
 * Structured concurrency for background work. Every long-running task runs in a group; the first
 * failure aborts the group's signal so siblings stop, and `wait()` rethrows it. No floating
 * promises.
 * @module
 */

/** A set of tasks that live and die together. */
export class TaskGroup implements AsyncDisposable {
  readonly #controller: AbortController;
  readonly #tasks = new Set<Promise<void>>();
  #firstError: { error: unknown } | undefined;

  /** Creates a group, cancelled when `parent` aborts. */
  constructor(parent?: AbortSignal) {
    this.#controller = new AbortController();
    if (parent) {
      if (parent.aborted) this.#controller.abort(parent.reason);
      else {
        parent.addEventListener("abort", () => this.#controller.abort(parent.reason), {
          once: true,
        });
      }
    }
  }

  /** Aborted when the group is cancelled or any task fails. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Starts `fn`; when it throws (other than by the group's own cancellation) the group fails. */
  spawn(name: string, fn: (signal: AbortSignal) => Promise<void>): void {
    const p = (async () => {
      try {
        await fn(this.signal);
      } catch (error) {
        if (this.signal.aborted && this.#firstError === undefined && isAbort(error, this.signal)) {
          return;
        }
        if (this.#firstError === undefined) {
          this.#firstError = { error: new Error(`Task "${name}" failed`, { cause: error }) };
          this.#controller.abort(this.#firstError.error);
        }
      }
    })();
    this.#tasks.add(p);
    p.finally(() => this.#tasks.delete(p));
  }

  /** Cancels every task. */
  cancel(reason?: unknown): void {
    this.#controller.abort(reason ?? new DOMException("TaskGroup cancelled", "AbortError"));
  }

  /** Waits for every task; rethrows the first failure. */
  async wait(): Promise<void> {
    while (this.#tasks.size > 0) await Promise.allSettled([...this.#tasks]);
    if (this.#firstError) throw this.#firstError.error;
  }

  /** Cancels and waits; failures after cancellation are not rethrown. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.cancel();
    while (this.#tasks.size > 0) await Promise.allSettled([...this.#tasks]);
  }
}

function isAbort(error: unknown, signal: AbortSignal): boolean {
  return error === signal.reason ||
    (error instanceof DOMException && error.name === "AbortError");
}
