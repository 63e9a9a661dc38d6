/**
 * The scheduler side of the agent (§1.1): which scheduler pod to talk to (pods in kube-system
 * labelled `name=<schedulerName>`, Ready with an IP, newest first) and the permit request itself
 * (POST AgentRequest to `http://<ip>:<port>/`, parse PluginResponse). It does not decide what to
 * ask for; the core does.
 * @module
 */
import {
  type AgentRequest,
  CURRENT_PROTO_VERSION,
  encodeAgentRequest,
  parsePluginResponse,
  type PluginResponse,
} from "../../api/permit.ts";
import type { Resources } from "../../api/quantity.ts";
import { RemoteError, TimeoutError } from "../../lib/errors.ts";
import type { Pod } from "../../lib/k8s/core_types.ts";
import { deadline } from "./_deadline.ts";

/** The scheduler pod in use. */
export interface SchedulerPod {
  /** Pod name. */
  readonly name: string;
  /** Pod uid: a restart gives a new uid. */
  readonly uid: string;
  /** Pod IP. */
  readonly ip: string;
}

/** Picks the usable scheduler: Ready, with an IP, most recently created. */
export function pickScheduler(pods: readonly Pod[]): SchedulerPod | undefined {
  let best: { pod: SchedulerPod; createdMs: number } | undefined;
  for (const p of pods) {
    const ip = p.status?.podIP;
    const ready = p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True");
    if (!ip || !ready || p.metadata.deletionTimestamp) continue;
    const createdMs = Date.parse(p.metadata.creationTimestamp ?? "") || 0;
    if (best === undefined || createdMs > best.createdMs) {
      best = { pod: { name: p.metadata.name ?? "", uid: p.metadata.uid ?? "", ip }, createdMs };
    }
  }
  return best?.pod;
}

/** True when the two picks are the same pod. */
export function samePod(a: SchedulerPod | undefined, b: SchedulerPod | undefined): boolean {
  return a?.uid === b?.uid && a?.ip === b?.ip && a?.name === b?.name;
}

/** Tracks the current scheduler pod and tells subscribers when it changes. */
export class SchedulerTracker {
  #current: SchedulerPod | undefined;
  readonly #subs = new Set<(pod: SchedulerPod | undefined) => void>();

  /** The pod in use, if any. */
  get current(): SchedulerPod | undefined {
    return this.#current;
  }

  /** Recomputes the pick from the current pod list and notifies on change. */
  update(pods: readonly Pod[]): void {
    const next = pickScheduler(pods);
    if (samePod(next, this.#current)) return;
    this.#current = next;
    for (const s of this.#subs) s(next);
  }

  /** Sets the pick directly (tests, fixed scheduler address). */
  set(pod: SchedulerPod | undefined): void {
    if (samePod(pod, this.#current)) return;
    this.#current = pod;
    for (const s of this.#subs) s(pod);
  }

  /** Subscribes to changes; returns the unsubscribe function. */
  subscribe(fn: (pod: SchedulerPod | undefined) => void): () => void {
    this.#subs.add(fn);
    return () => this.#subs.delete(fn);
  }
}

/** Everything needed to send one permit request. */
export interface PermitRequest {
  /** The VM's runner pod. */
  readonly pod: { readonly namespace: string; readonly name: string };
  /** Compute unit. */
  readonly computeUnit: Resources;
  /** Resources asked for. */
  readonly resources: Resources;
  /** Last permit, or null. */
  readonly lastPermit: Resources | null;
  /** Metrics, or null. */
  readonly metrics: { readonly loadAvg1M: number } | null;
}

/** Sends a permit request; any non-200 answer or bad body is an error. */
export async function requestPermit(
  fetchFn: (req: Request) => Promise<Response>,
  url: string,
  req: PermitRequest,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<PluginResponse> {
  const body: AgentRequest = {
    protoVersion: CURRENT_PROTO_VERSION,
    pod: { namespace: req.pod.namespace, name: req.pod.name },
    computeUnit: req.computeUnit,
    resources: req.resources,
    lastPermit: req.lastPermit,
    metrics: req.metrics === null ? null : { loadAvg1M: req.metrics.loadAvg1M },
  };
  using d = deadline(signal, timeoutMs, `scheduler request to ${url}`);
  const all = d.signal;
  let res: Response;
  let text: string;
  try {
    res = await fetchFn(
      new Request(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(encodeAgentRequest(body)),
        signal: all,
      }),
    );
    text = await res.text();
  } catch (cause) {
    if (d.timedOut) throw new TimeoutError(`scheduler request to ${url} timed out`, { cause });
    throw new RemoteError(`scheduler request to ${url} failed`, { cause });
  }
  if (res.status !== 200) {
    throw new RemoteError(`scheduler answered ${res.status}: ${text.slice(0, 200)}`, {
      status: res.status,
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new RemoteError("scheduler answer is not JSON", { status: 200, cause });
  }
  const parsed = parsePluginResponse(json);
  if (!parsed.ok) throw new RemoteError("scheduler answer does not parse", { cause: parsed.error });
  return parsed.value;
}
