/**
 * Leader election with a coordination.k8s.io/v1 Lease, following client-go's rules: acquire when
 * the lease is free or its record has not changed for a whole lease duration (measured on our own
 * clock, so clock skew between holders does not matter), renew every retry period, and stop
 * leading when renewal has failed for the renew deadline. Releases the lease on shutdown. It does
 * not decide what the leader does: `onLeading` does.
 * @module
 */
import type { Clock } from "../clock.ts";
import { errorChainMessage } from "../errors.ts";
import type { Logger } from "../log.ts";
import { isConflict, isNotFound, type ResourceClient } from "./client.ts";
import type { Lease } from "./core_types.ts";

/** Options for {@linkcode runLeaderElection}. */
export interface LeaderElectionOptions {
  /** Lease client. */
  leases: ResourceClient<Lease, Lease>;
  /** Namespace of the lease. */
  namespace: string;
  /** Lease name (the reference controller uses `a3b22509.neon.tech`). */
  name: string;
  /** This candidate's identity (hostname + random suffix). */
  identity: string;
  /** How long a lease is valid without renewal; default 15 000 ms. */
  leaseDurationMs?: number;
  /** How long the leader keeps trying to renew before giving up; default 10 000 ms. */
  renewDeadlineMs?: number;
  /** Wait between attempts; default 2 000 ms. */
  retryPeriodMs?: number;
  /** Time source. */
  clock: Clock;
  /** Logger. */
  logger: Logger;
}

/** Leadership was lost while leading; the process should exit and start over. */
export class LeadershipLostError extends Error {
  /** Creates the error. */
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "LeadershipLostError";
  }
}

/** Formats epoch ms as a metav1.MicroTime (RFC 3339 with exactly six fraction digits). */
export function formatMicroTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

interface Observed {
  holder: string;
  renewTime: string;
  seenAtMs: number;
}

/**
 * Campaigns for the lease until the signal aborts; while leading, runs `onLeading` with a signal
 * that aborts when leadership is lost. Throws `LeadershipLostError` when leadership is lost, and
 * rethrows `onLeading`'s failure.
 */
export async function runLeaderElection(
  options: LeaderElectionOptions,
  signal: AbortSignal,
  onLeading: (signal: AbortSignal) => Promise<void>,
): Promise<void> {
  const o = {
    leaseDurationMs: 15_000,
    renewDeadlineMs: 10_000,
    retryPeriodMs: 2_000,
    ...options,
  };
  const log = o.logger;
  let observed: Observed | undefined;

  const tryAcquireOrRenew = async (): Promise<boolean> => {
    const now = o.clock.now();
    const durationSeconds = Math.max(1, Math.round(o.leaseDurationMs / 1000));
    let lease: Lease;
    try {
      lease = await o.leases.get(o.name, { namespace: o.namespace, signal });
    } catch (error) {
      if (!isNotFound(error)) throw error;
      try {
        await o.leases.create({
          metadata: { name: o.name, namespace: o.namespace },
          spec: {
            holderIdentity: o.identity,
            leaseDurationSeconds: durationSeconds,
            acquireTime: formatMicroTime(now),
            renewTime: formatMicroTime(now),
            leaseTransitions: 0,
          },
        }, { namespace: o.namespace, signal });
        observed = { holder: o.identity, renewTime: formatMicroTime(now), seenAtMs: now };
        return true;
      } catch (createError) {
        if (isConflict(createError)) return false;
        throw createError;
      }
    }
    const holder = lease.spec?.holderIdentity ?? "";
    const renewTime = lease.spec?.renewTime ?? "";
    if (observed === undefined || observed.holder !== holder || observed.renewTime !== renewTime) {
      observed = { holder, renewTime, seenAtMs: now };
    }
    const heldByOther = holder !== "" && holder !== o.identity;
    const leaseMs = (lease.spec?.leaseDurationSeconds ?? durationSeconds) * 1000;
    if (heldByOther && observed.seenAtMs + leaseMs > now) return false;
    const transitions = lease.spec?.leaseTransitions ?? 0;
    const spec = {
      ...lease.spec,
      holderIdentity: o.identity,
      leaseDurationSeconds: durationSeconds,
      renewTime: formatMicroTime(now),
      ...(holder === o.identity ? {} : {
        acquireTime: formatMicroTime(now),
        leaseTransitions: transitions + 1,
      }),
    };
    try {
      const updated = await o.leases.replace({ ...lease, spec }, {
        namespace: o.namespace,
        signal,
      });
      observed = {
        holder: o.identity,
        renewTime: updated.spec?.renewTime ?? spec.renewTime,
        seenAtMs: now,
      };
      return true;
    } catch (error) {
      if (isConflict(error)) return false;
      throw error;
    }
  };

  const attempt = async (): Promise<boolean> => {
    try {
      return await tryAcquireOrRenew();
    } catch (error) {
      if (signal.aborted) return false;
      log.warn("lease attempt failed", { lease: o.name, error: errorChainMessage(error) });
      return false;
    }
  };

  // Campaign.
  while (!signal.aborted) {
    if (await attempt()) break;
    try {
      await o.clock.sleep(o.retryPeriodMs, signal);
    } catch {
      return; // Shut down before becoming leader.
    }
  }
  if (signal.aborted) return;
  log.info("became leader", { lease: `${o.namespace}/${o.name}`, identity: o.identity });

  const leading = new AbortController();
  const onParentAbort = () => leading.abort(signal.reason);
  signal.addEventListener("abort", onParentAbort, { once: true });
  let lost: LeadershipLostError | undefined;
  const renewLoop = (async () => {
    let lastRenewMs = o.clock.now();
    while (!leading.signal.aborted) {
      try {
        await o.clock.sleep(o.retryPeriodMs, leading.signal);
      } catch {
        return; // Leading ended.
      }
      if (await attempt()) {
        lastRenewMs = o.clock.now();
      } else if (o.clock.now() - lastRenewMs >= o.renewDeadlineMs && !leading.signal.aborted) {
        lost = new LeadershipLostError(`Cannot renew lease "${o.namespace}/${o.name}"`);
        leading.abort(lost);
        return;
      }
    }
  })();
  let leadingError: unknown;
  try {
    await onLeading(leading.signal);
  } catch (error) {
    leadingError = error;
  } finally {
    leading.abort();
    signal.removeEventListener("abort", onParentAbort);
    await renewLoop;
  }
  if (lost) throw lost;
  if (leadingError !== undefined && !signal.aborted) throw leadingError;
  if (signal.aborted) await release(o);
}

async function release(o: LeaderElectionOptions & { leaseDurationMs: number }): Promise<void> {
  try {
    const lease = await o.leases.get(o.name, { namespace: o.namespace });
    if (lease.spec?.holderIdentity !== o.identity) return;
    await o.leases.replace({
      ...lease,
      spec: {
        ...lease.spec,
        holderIdentity: "",
        leaseDurationSeconds: 1,
        renewTime: formatMicroTime(o.clock.now()),
      },
    }, { namespace: o.namespace, signal: AbortSignal.timeout(2000) });
    o.logger.info("released lease", { lease: `${o.namespace}/${o.name}` });
  } catch (error) {
    o.logger.warn("cannot release lease", { error: errorChainMessage(error) });
  }
}
