/**
 * HTTP routing: the main handler on :10299 sends `/scheduler/*` to the extender and every other
 * path to the permit API (the reference serves the permit on any path); the ops handler on :9100
 * serves `/metrics`, `/healthz` and `/readyz` (ready = leader and synced, so agents, which pick a
 * Ready scheduler pod, only talk to a replica that can answer). Handlers only; `main.ts` listens.
 * @module
 */
import type { Registry } from "prom-client";
import { EXTENDER_PREFIX } from "./extender_handler.ts";

/** A request handler. */
export type Handler = (req: Request) => Promise<Response>;

/**
 * The path of an absolute request URL (`http://host:port/a/b?q` → `/a/b`) without building a URL
 * object (this runs for every permit request); `/` when there is none.
 */
export function urlPath(url: string): string {
  const scheme = url.indexOf("://");
  const slash = url.indexOf("/", scheme < 0 ? 0 : scheme + 3);
  if (slash < 0) return "/";
  let end = url.length;
  const q = url.indexOf("?", slash);
  if (q >= 0) end = q;
  const h = url.indexOf("#", slash);
  if (h >= 0 && h < end) end = h;
  return url.slice(slash, end);
}

/** Routes extender paths to `extender` and everything else to `permit`. */
export function createMainHandler(permit: Handler, extender: Handler): Handler {
  return (req) => {
    const path = urlPath(req.url);
    return path === EXTENDER_PREFIX || path.startsWith(`${EXTENDER_PREFIX}/`)
      ? extender(req)
      : permit(req);
  };
}

/** Options for {@linkcode createOpsHandler}. */
export interface OpsHandlerOptions {
  /** Metrics registry. */
  registry: Registry;
  /** Liveness. */
  healthy: () => boolean;
  /** Readiness, with a reason when not ready. */
  ready: () => string | undefined;
}

/** Serves metrics and health. */
export function createOpsHandler(o: OpsHandlerOptions): Handler {
  return async (req) => {
    const path = new URL(req.url).pathname;
    switch (path) {
      case "/metrics":
        return new Response(await o.registry.metrics(), {
          headers: { "content-type": o.registry.contentType },
        });
      case "/healthz":
        return o.healthy() ? new Response("ok\n") : new Response("unhealthy\n", { status: 500 });
      case "/readyz": {
        const why = o.ready();
        return why === undefined
          ? new Response("ok\n")
          : new Response(`not ready: ${why}\n`, { status: 503 });
      }
      default:
        return new Response("not found\n", { status: 404 });
    }
  };
}
