/**
 * A per-request abort signal: aborted when the parent aborts or after `ms`. Disposing it clears
 * the timer and detaches it from the parent, so long-lived parents (a runner's signal) do not
 * collect one dependent signal per request as `AbortSignal.any` + `AbortSignal.timeout` would
 * until garbage collection. Private to agent io.
 * @module
 */
import { TimeoutError } from "../../lib/errors.ts";

/** A signal with a deadline; dispose it when the request is done. */
export interface Deadline extends Disposable {
  /** Aborted on the parent's abort or at the deadline. */
  readonly signal: AbortSignal;
  /** True when the deadline (not the parent) aborted it. */
  readonly timedOut: boolean;
}

/** Creates a deadline of `ms` under `parent`. */
export function deadline(parent: AbortSignal | undefined, ms: number, what = "request"): Deadline {
  const ctl = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    ctl.abort(new TimeoutError(`${what} timed out after ${ms} ms`));
  }, ms);
  const onAbort = () => ctl.abort(parent?.reason);
  if (parent?.aborted) onAbort();
  else parent?.addEventListener("abort", onAbort, { once: true });
  return {
    signal: ctl.signal,
    get timedOut() {
      return timedOut;
    },
    [Symbol.dispose]() {
      clearTimeout(timer);
      parent?.removeEventListener("abort", onAbort);
    },
  };
}
