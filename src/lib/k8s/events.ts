/**
 * Records core/v1 Events about objects (shown by `kubectl describe`), deduplicated like client-go:
 * a repeat of the same object, type, reason and message bumps `count` and `lastTimestamp` of the
 * existing Event instead of creating a new one. Recording is best effort: failures are logged,
 * never thrown, so a broken event path cannot break a reconcile.
 * @module
 */
import type { Clock } from "../clock.ts";
import { errorChainMessage } from "../errors.ts";
import type { Logger } from "../log.ts";
import { isNotFound, type ResourceClient } from "./client.ts";
import type { Event } from "./core_types.ts";

/** The object an event is about. */
export interface EventSubject {
  /** apiVersion of the object. */
  readonly apiVersion: string;
  /** Kind of the object. */
  readonly kind: string;
  /** Metadata of the object. */
  readonly metadata: {
    readonly name: string;
    readonly namespace?: string | undefined;
    readonly uid?: string | undefined;
    readonly resourceVersion?: string | undefined;
  };
}

/** Event type. */
export type EventType = "Normal" | "Warning";

/** Something that records events (the real recorder, or a test fake). */
export interface EventSink {
  /** Records one event; never throws. */
  record(subject: EventSubject, type: EventType, reason: string, message: string): Promise<void>;
}

/** Options for {@linkcode EventRecorder}. */
export interface EventRecorderOptions {
  /** Events client. */
  events: ResourceClient<Event, Event>;
  /** Reporting component (`neonvm-controller`). */
  component: string;
  /** Reporting instance / host, e.g. the pod name. */
  host?: string;
  /** Time source. */
  clock: Clock;
  /** Logger for failures. */
  logger: Logger;
  /** Dedup cache size; default 4096. */
  cacheSize?: number;
}

function rfc3339Seconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** Records deduplicated Events through the API. */
export class EventRecorder implements EventSink {
  readonly #opts: EventRecorderOptions;
  readonly #cache = new Map<string, { name: string; namespace: string; count: number }>();

  /** Creates a recorder. */
  constructor(options: EventRecorderOptions) {
    this.#opts = options;
  }

  /** Records one event (creating it or bumping its count); logs and swallows failures. */
  async record(
    subject: EventSubject,
    type: EventType,
    reason: string,
    message: string,
  ): Promise<void> {
    const o = this.#opts;
    const nowMs = o.clock.now();
    const namespace = subject.metadata.namespace || "default";
    const key = [
      subject.kind,
      namespace,
      subject.metadata.name,
      subject.metadata.uid ?? "",
      type,
      reason,
      message,
    ].join("\u0000");
    const ts = rfc3339Seconds(nowMs);
    try {
      const hit = this.#cache.get(key);
      if (hit !== undefined) {
        this.#cache.delete(key);
        try {
          await o.events.patch(hit.name, {
            type: "merge",
            body: { count: hit.count + 1, lastTimestamp: ts },
          }, { namespace: hit.namespace });
          this.#cache.set(key, { ...hit, count: hit.count + 1 });
          return;
        } catch (error) {
          if (!isNotFound(error)) throw error;
          // The event expired (TTL); create a fresh one below.
        }
      }
      const name = `${subject.metadata.name}.${(BigInt(nowMs) * 1_000_000n).toString(16)}${
        Math.floor(Math.random() * 0xfff).toString(16)
      }`;
      await o.events.create({
        metadata: { name, namespace },
        involvedObject: {
          apiVersion: subject.apiVersion,
          kind: subject.kind,
          name: subject.metadata.name,
          namespace: subject.metadata.namespace,
          ...(subject.metadata.uid ? { uid: subject.metadata.uid } : {}),
          ...(subject.metadata.resourceVersion
            ? { resourceVersion: subject.metadata.resourceVersion }
            : {}),
        },
        reason,
        message,
        type,
        count: 1,
        firstTimestamp: ts,
        lastTimestamp: ts,
        source: { component: o.component, ...(o.host ? { host: o.host } : {}) },
        reportingComponent: o.component,
        reportingInstance: o.host ?? o.component,
      }, { namespace });
      this.#cache.set(key, { name, namespace, count: 1 });
      const max = o.cacheSize ?? 4096;
      while (this.#cache.size > max) {
        const oldest = this.#cache.keys().next().value;
        if (oldest === undefined) break;
        this.#cache.delete(oldest);
      }
    } catch (error) {
      o.logger.warn("cannot record event", {
        object: `${namespace}/${subject.metadata.name}`,
        reason,
        error: errorChainMessage(error),
      });
    }
  }
}

/** An event sink that keeps events in memory, for tests. */
export class MemoryEventSink implements EventSink {
  /** Recorded events in order. */
  readonly events: { object: string; type: EventType; reason: string; message: string }[] = [];
  /** Records in memory. */
  record(subject: EventSubject, type: EventType, reason: string, message: string): Promise<void> {
    const ns = subject.metadata.namespace;
    this.events.push({
      object: `${ns ? `${ns}/` : ""}${subject.metadata.name}`,
      type,
      reason,
      message,
    });
    return Promise.resolve();
  }
}
