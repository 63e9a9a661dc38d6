/**
 * Test helper: a tiny in-memory Kubernetes API server on 127.0.0.1:0 (Deno.serve). It supports
 * get, list (label selector `k=v`, field selector `metadata.name=` / `spec.nodeName=`), watch
 * (with BOOKMARK and forced 410 Gone), create, replace (409 on stale resourceVersion), patch (JSON
 * patch with `test`, merge, strategic treated as merge), delete with preconditions, and the
 * `status`/`resize` subresources. Not a conformance fake: only what the client and controller use.
 * Never used by production code.
 * @module
 */

type Obj = Record<string, unknown> & { metadata: Record<string, unknown> };

interface Watcher {
  prefix: string;
  namespace: string | undefined;
  send: (line: string) => void;
}

function status(code: number, reason: string, message: string): Response {
  return Response.json(
    { kind: "Status", apiVersion: "v1", status: "Failure", code, reason, message },
    { status: code },
  );
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Applies an RFC 7386 merge patch; with `strategic`, lists of named objects (containers) are
 * merged by `name` as a strategic merge patch does.
 */
export function mergePatch(target: unknown, patch: unknown, strategic = false): unknown {
  if (
    strategic && Array.isArray(target) && Array.isArray(patch) &&
    patch.every((p) => isObj(p) && typeof p.name === "string")
  ) {
    const out = target.map((t) => clone(t));
    for (const p of patch as Record<string, unknown>[]) {
      const i = out.findIndex((t) => isObj(t) && t.name === p.name);
      if (i >= 0) out[i] = mergePatch(out[i], p, true);
      else out.push(clone(p));
    }
    return out;
  }
  if (!isObj(patch)) return clone(patch);
  const out: Record<string, unknown> = isObj(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v, strategic);
  }
  return out;
}

class PatchFailed extends Error {}

function parsePointer(p: string): string[] {
  if (p === "") return [];
  return p.slice(1).split("/").map((s) => s.replaceAll("~1", "/").replaceAll("~0", "~"));
}

function getAt(doc: unknown, path: string[]): unknown {
  let cur: unknown = doc;
  for (const seg of path) {
    if (Array.isArray(cur)) cur = cur[Number(seg)];
    else if (isObj(cur)) cur = cur[seg];
    else return undefined;
  }
  return cur;
}

/** Applies an RFC 6902 JSON patch; throws when a `test` fails or a path is missing. */
export function jsonPatch(doc: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw new PatchFailed("patch is not an array");
  let root = clone(doc);
  for (const op of ops) {
    if (!isObj(op) || typeof op.path !== "string") throw new PatchFailed("bad op");
    const path = parsePointer(op.path);
    const parentPath = path.slice(0, -1);
    const last = path[path.length - 1];
    const parent = getAt(root, parentPath);
    const exists = path.length === 0 ||
      (Array.isArray(parent) ? Number(last) < parent.length : isObj(parent) && last! in parent);
    switch (op.op) {
      case "test":
        if (JSON.stringify(getAt(root, path) ?? null) !== JSON.stringify(op.value ?? null)) {
          throw new PatchFailed(`test failed at ${op.path}`);
        }
        break;
      case "remove":
        if (!exists) throw new PatchFailed(`nothing to remove at ${op.path}`);
        if (Array.isArray(parent)) parent.splice(Number(last), 1);
        else if (isObj(parent)) delete parent[last!];
        break;
      case "add":
      case "replace":
        if (path.length === 0) {
          root = clone(op.value);
          break;
        }
        if (op.op === "replace" && !exists) {
          throw new PatchFailed(`nothing to replace at ${op.path}`);
        }
        if (Array.isArray(parent)) {
          if (last === "-") parent.push(clone(op.value));
          else if (op.op === "add") parent.splice(Number(last), 0, clone(op.value));
          else parent[Number(last)] = clone(op.value);
        } else if (isObj(parent)) parent[last!] = clone(op.value);
        else throw new PatchFailed(`no parent for ${op.path}`);
        break;
      default:
        throw new PatchFailed(`unsupported op ${String(op.op)}`);
    }
  }
  return root;
}

function matchesLabels(obj: Obj, selector: string | null): boolean {
  if (!selector) return true;
  const labels = isObj(obj.metadata.labels) ? obj.metadata.labels : {};
  return selector.split(",").every((term) => {
    const [k, v] = term.split("=");
    return labels[k!] === v;
  });
}

function matchesFields(obj: Obj, selector: string | null): boolean {
  if (!selector) return true;
  return selector.split(",").every((term) => {
    const [k, v] = term.split("=");
    const val = getAt(obj, k!.split("."));
    return String(val ?? "") === v;
  });
}

/** The in-memory API server. */
export class FakeApiServer implements AsyncDisposable {
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly #objects = new Map<string, Obj>();
  readonly #watchers = new Set<Watcher>();
  #rv = 100;
  /** Every request seen, as `METHOD path?query`. */
  readonly requests: string[] = [];
  /** When set, the next watch request is answered with an ERROR 410 event. */
  goneOnNextWatch = false;
  /** Hook to fail requests: return a Response to answer instead. */
  intercept: ((req: Request) => Response | undefined) | undefined;

  /** Starts listening on 127.0.0.1 with a random port. */
  constructor() {
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (req) => this.handle(req),
    );
  }

  /** Base URL of the server. */
  get url(): string {
    return `http://127.0.0.1:${this.#server.addr.port}`;
  }

  /** Current resourceVersion counter. */
  get resourceVersion(): string {
    return String(this.#rv);
  }

  /** Stores an object directly (as if created), under `prefix` (e.g. `/api/v1/pods`). */
  seed(prefix: string, obj: Record<string, unknown>): Obj {
    const o = clone(obj) as Obj;
    o.metadata = { ...(o.metadata ?? {}) };
    o.metadata.resourceVersion = String(++this.#rv);
    o.metadata.uid ??= crypto.randomUUID();
    o.metadata.generation ??= 1;
    this.#objects.set(
      this.#key(prefix, o.metadata.namespace as string, o.metadata.name as string),
      o,
    );
    this.#notify(prefix, "ADDED", o);
    return o;
  }

  /** Returns a stored object. */
  object(prefix: string, namespace: string | undefined, name: string): Obj | undefined {
    return this.#objects.get(this.#key(prefix, namespace, name));
  }

  /** Deletes a stored object directly, notifying watchers. */
  remove(prefix: string, namespace: string | undefined, name: string): void {
    const key = this.#key(prefix, namespace, name);
    const o = this.#objects.get(key);
    if (!o) return;
    this.#objects.delete(key);
    o.metadata.resourceVersion = String(++this.#rv);
    this.#notify(prefix, "DELETED", o);
  }

  /** Closes every open watch stream (as a server timeout would). */
  closeWatches(): void {
    for (const w of this.#watchers) w.send("");
  }

  #key(prefix: string, ns: string | undefined, name: string): string {
    return `${prefix}|${ns ?? ""}|${name}`;
  }

  #notify(prefix: string, type: string, obj: Obj): void {
    for (const w of this.#watchers) {
      if (w.prefix !== prefix) continue;
      if (w.namespace && w.namespace !== obj.metadata.namespace) continue;
      w.send(JSON.stringify({ type, object: obj }) + "\n");
    }
  }

  #parse(url: URL): {
    prefix: string;
    namespace: string | undefined;
    name: string | undefined;
    sub: string | undefined;
  } | undefined {
    const parts: string[] = url.pathname.split("/").filter(Boolean);
    let base: string[];
    if (parts[0] === "api") base = parts.splice(0, 2);
    else if (parts[0] === "apis") base = parts.splice(0, 3);
    else return undefined;
    let namespace: string | undefined;
    const first: string | undefined = parts[0];
    if (first === "namespaces" && parts.length >= 3) {
      namespace = decodeURIComponent(parts[1]!);
      parts.splice(0, 2);
    }
    const plural = parts.shift();
    if (!plural) return undefined;
    const name = parts[0] !== undefined ? decodeURIComponent(parts[0]) : undefined;
    return { prefix: `/${[...base, plural].join("/")}`, namespace, name, sub: parts[1] };
  }

  /** Answers one request in-process (usable as a client's `fetch`). */
  async handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    this.requests.push(`${req.method} ${url.pathname}${url.search}`);
    const intercepted = this.intercept?.(req);
    if (intercepted) return intercepted;
    const p = this.#parse(url);
    if (!p) return status(404, "NotFound", "no such path");
    const { prefix, namespace, name, sub } = p;
    if (req.method === "GET" && name === undefined) {
      if (url.searchParams.get("watch")) return this.#watch(prefix, namespace, url);
      const items = [...this.#objects.entries()]
        .filter(([k]) => k.startsWith(prefix + "|"))
        .map(([, o]) => o)
        .filter((o) => !namespace || o.metadata.namespace === namespace)
        .filter((o) => matchesLabels(o, url.searchParams.get("labelSelector")))
        .filter((o) => matchesFields(o, url.searchParams.get("fieldSelector")));
      return Response.json({
        kind: "List",
        metadata: { resourceVersion: String(this.#rv) },
        items,
      });
    }
    if (req.method === "POST" && name === undefined) {
      const body = await req.json() as Obj;
      const n = body.metadata?.name as string;
      if (this.#objects.has(this.#key(prefix, namespace, n))) {
        return status(409, "AlreadyExists", `"${n}" already exists`);
      }
      const o = this.seed(prefix, { ...body, metadata: { ...body.metadata, namespace } });
      return Response.json(o, { status: 201 });
    }
    if (name === undefined) return status(405, "MethodNotAllowed", "bad method");
    const key = this.#key(prefix, namespace, name);
    const cur = this.#objects.get(key);
    if (req.method === "POST" && sub !== undefined) {
      if (!cur) return status(404, "NotFound", `"${name}" not found`);
      const body = await req.json();
      if (sub === "binding" && isObj(body) && isObj(body.target)) {
        const next = clone(cur);
        next.spec = { ...(isObj(next.spec) ? next.spec : {}), nodeName: body.target.name };
        this.#store(prefix, key, next, "MODIFIED");
      }
      return Response.json({ kind: "Status", status: "Success", code: 201 }, { status: 201 });
    }
    if (!cur) return status(404, "NotFound", `"${name}" not found`);
    switch (req.method) {
      case "GET":
        return Response.json(cur);
      case "PUT": {
        const body = await req.json() as Obj;
        const rv = body.metadata?.resourceVersion;
        if (rv !== undefined && rv !== cur.metadata.resourceVersion) {
          return status(409, "Conflict", "the object has been modified");
        }
        return this.#write(prefix, key, cur, body, sub);
      }
      case "PATCH": {
        const ct = req.headers.get("content-type") ?? "";
        const body = await req.json();
        const rv = isObj(body) && isObj(body.metadata) ? body.metadata.resourceVersion : undefined;
        if (rv !== undefined && rv !== cur.metadata.resourceVersion) {
          return status(409, "Conflict", "the object has been modified");
        }
        let patched: unknown;
        try {
          patched = ct.startsWith("application/json-patch")
            ? jsonPatch(cur, body)
            : mergePatch(cur, body, ct.startsWith("application/strategic"));
        } catch (e) {
          if (e instanceof PatchFailed) return status(422, "Invalid", e.message);
          throw e;
        }
        return this.#write(prefix, key, cur, patched as Obj, sub);
      }
      case "DELETE": {
        const body = await req.json().catch(() => ({})) as Record<string, unknown>;
        const pre = isObj(body.preconditions) ? body.preconditions : {};
        if (pre.uid !== undefined && pre.uid !== cur.metadata.uid) {
          return status(409, "Conflict", "Precondition failed: UID in precondition");
        }
        if (
          pre.resourceVersion !== undefined && pre.resourceVersion !== cur.metadata.resourceVersion
        ) {
          return status(409, "Conflict", "Precondition failed: ResourceVersion in precondition");
        }
        const finalizers = cur.metadata.finalizers;
        if (Array.isArray(finalizers) && finalizers.length > 0) {
          const next = clone(cur);
          next.metadata.deletionTimestamp ??= new Date().toISOString().replace(/\.\d+Z$/, "Z");
          this.#store(prefix, key, next, "MODIFIED");
          return Response.json(next);
        }
        this.remove(prefix, namespace, name);
        return Response.json({ kind: "Status", status: "Success" });
      }
    }
    return status(405, "MethodNotAllowed", "bad method");
  }

  #write(prefix: string, key: string, cur: Obj, body: Obj, sub: string | undefined): Response {
    let next: Obj;
    if (sub === "status") next = { ...clone(cur), status: clone(body.status) };
    else if (sub === "resize") {
      next = clone(cur);
      next.spec = clone(body.spec);
    } else {
      next = { ...clone(body), metadata: { ...clone(body.metadata) } };
      next.status = clone(cur.status);
      next.metadata.uid = cur.metadata.uid;
      next.metadata.deletionTimestamp = cur.metadata.deletionTimestamp;
      if (next.metadata.deletionTimestamp === undefined) delete next.metadata.deletionTimestamp;
      next.metadata.generation = JSON.stringify(next.spec) === JSON.stringify(cur.spec)
        ? cur.metadata.generation
        : Number(cur.metadata.generation ?? 1) + 1;
    }
    const fin = next.metadata.finalizers;
    if (
      next.metadata.deletionTimestamp !== undefined &&
      (!Array.isArray(fin) || fin.length === 0)
    ) {
      this.#objects.delete(key);
      next.metadata.resourceVersion = String(++this.#rv);
      this.#notify(prefix, "DELETED", next);
      return Response.json(next);
    }
    this.#store(prefix, key, next, "MODIFIED");
    return Response.json(next);
  }

  #store(prefix: string, key: string, next: Obj, type: string): void {
    next.metadata.resourceVersion = String(++this.#rv);
    this.#objects.set(key, next);
    this.#notify(prefix, type, next);
  }

  #watch(prefix: string, namespace: string | undefined, url: URL): Response {
    const enc = new TextEncoder();
    if (this.goneOnNextWatch) {
      this.goneOnNextWatch = false;
      const line = JSON.stringify({
        type: "ERROR",
        object: {
          kind: "Status",
          code: 410,
          reason: "Expired",
          message: "too old resource version",
        },
      }) + "\n";
      return new Response(line);
    }
    let watcher: Watcher | undefined;
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        watcher = {
          prefix,
          namespace,
          send: (line) => {
            if (line === "") {
              this.#watchers.delete(watcher!);
              controller.close();
              return;
            }
            controller.enqueue(enc.encode(line));
          },
        };
        this.#watchers.add(watcher);
        if (url.searchParams.get("allowWatchBookmarks") === "true") {
          controller.enqueue(enc.encode(
            JSON.stringify({
              type: "BOOKMARK",
              object: { metadata: { resourceVersion: String(this.#rv) } },
            }) + "\n",
          ));
        }
      },
      cancel: () => {
        if (watcher) this.#watchers.delete(watcher);
      },
    });
    return new Response(body, { headers: { "content-type": "application/json" } });
  }

  /** Closes watches and stops the server. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.closeWatches();
    await this.#server.shutdown();
  }
}

/** A kubeconfig (JSON, token auth) that points a component process at a fake API server. */
export function fakeKubeconfig(serverUrl: string): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "fake", cluster: { server: serverUrl } }],
    users: [{ name: "u", user: { token: "t" } }],
    contexts: [{ name: "c", context: { cluster: "fake", user: "u" } }],
    "current-context": "c",
  });
}
