/**
 * A small typed REST client for the Kubernetes API: one `KubeClient` per API server (owning the
 * TLS HTTP client and credentials), and `ResourceClient`s for get, list, watch, create, replace,
 * patch and delete of one resource, with subresources (`status`, `resize`, `binding`). Responses
 * are parsed with the caller's zod schema at the edge; API errors become `KubeApiError` carrying
 * the HTTP status and the server's Status message. It does not cache, retry or relist: the
 * informer does that.
 * @module
 */
import type { z } from "zod";
import { InvariantError, ParseError, RemoteError } from "../errors.ts";
import type { ClusterAccess } from "./kubeconfig.ts";
import {
  apiVersionOf,
  type ObjectLike,
  type ResourceDescriptor,
  type Status,
  StatusSchema,
} from "./meta.ts";

/** An API request failed; `status` is the HTTP status, `reason` the Status reason. */
export class KubeApiError extends RemoteError {
  /** HTTP status code (404, 409, 410, 422, ...), 0 when no response arrived. */
  declare readonly status: number;
  /** Status `reason` (`NotFound`, `Conflict`, `Invalid`, `Expired`, ...) or `""`. */
  readonly reason: string;
  /** The server's Status `message`, or the response text. */
  readonly apiMessage: string;
  /** Creates an API error. */
  constructor(
    message: string,
    options: { status: number; reason?: string; apiMessage?: string; cause?: unknown },
  ) {
    super(message, { status: options.status, cause: options.cause });
    this.name = "KubeApiError";
    this.reason = options.reason ?? "";
    this.apiMessage = options.apiMessage ?? "";
  }
}

/** True for a 404 Not Found API error. */
export function isNotFound(err: unknown): boolean {
  return err instanceof KubeApiError && err.status === 404;
}
/** True for a 409 Conflict API error (stale resourceVersion or already exists). */
export function isConflict(err: unknown): boolean {
  return err instanceof KubeApiError && err.status === 409;
}
/** True for a 422 Invalid API error (validation, failed JSON-patch `test`). */
export function isInvalid(err: unknown): boolean {
  return err instanceof KubeApiError && err.status === 422;
}
/** True for a 410 Gone API error (watch resourceVersion too old). */
export function isGone(err: unknown): boolean {
  return err instanceof KubeApiError && err.status === 410;
}

/** The fetch function the client sends requests through (injectable for tests). */
export type FetchFn = (request: Request) => Promise<Response>;

/** Options for {@linkcode KubeClient}. */
export interface KubeClientOptions {
  /** API server base URL, no trailing slash. */
  server: string;
  /** Sends a request; default: global fetch (with `httpClient` when given). */
  fetch?: FetchFn;
  /** Deno HTTP client carrying CA and client certificate; closed by `close()`. */
  httpClient?: Deno.HttpClient;
  /** Returns the bearer token to send, if any. */
  token?: () => Promise<string | undefined>;
  /** `fieldManager` sent on writes; default `neonvm-ts`. */
  fieldManager?: string;
  /** Timeout of non-watch requests; default 30 000 ms. */
  requestTimeoutMs?: number;
  /** User-Agent header. */
  userAgent?: string;
}

/** Options of one raw request. */
export interface RequestOptions {
  /** Query parameters; undefined values are skipped. */
  query?: Record<string, string | number | boolean | undefined>;
  /** JSON body. */
  body?: unknown;
  /** Content type of the body; default `application/json`. */
  contentType?: string;
  /** Cancels the request. */
  signal?: AbortSignal | undefined;
  /** No timeout (watches). */
  stream?: boolean;
}

const TOKEN_REFRESH_MS = 60_000;

/** A connection to one API server; implements `Disposable` to close its HTTP client. */
export class KubeClient implements Disposable {
  readonly #server: string;
  readonly #fetch: FetchFn;
  readonly #httpClient: Deno.HttpClient | undefined;
  readonly #token: (() => Promise<string | undefined>) | undefined;
  readonly #timeoutMs: number;
  readonly #userAgent: string;
  /** `fieldManager` sent on writes. */
  readonly fieldManager: string;

  /** Creates a client for `options.server`. */
  constructor(options: KubeClientOptions) {
    this.#server = options.server.replace(/\/+$/, "");
    this.#httpClient = options.httpClient;
    const httpClient = options.httpClient;
    this.#fetch = options.fetch ??
      ((req) => httpClient ? fetch(req, { client: httpClient }) : fetch(req));
    this.#token = options.token;
    this.#timeoutMs = options.requestTimeoutMs ?? 30_000;
    this.#userAgent = options.userAgent ?? "neonvm-ts";
    this.fieldManager = options.fieldManager ?? "neonvm-ts";
  }

  /** Creates a client from loaded cluster access (TLS CA, client certificate, token). */
  static fromAccess(
    access: ClusterAccess,
    options: Omit<KubeClientOptions, "server" | "httpClient" | "token"> = {},
  ): KubeClient {
    const tls = access.certPem !== undefined && access.keyPem !== undefined
      ? { cert: access.certPem, key: access.keyPem }
      : {};
    const httpClient = Deno.createHttpClient({
      ...(access.caPem !== undefined ? { caCerts: [access.caPem] } : {}),
      ...tls,
    });
    let token: (() => Promise<string | undefined>) | undefined;
    if (access.token !== undefined) {
      const t = access.token;
      token = () => Promise.resolve(t);
    } else if (access.tokenFile !== undefined) {
      const file = access.tokenFile;
      let cached: { value: string; readAtMs: number } | undefined;
      token = async () => {
        const nowMs = Date.now();
        if (cached === undefined || nowMs - cached.readAtMs > TOKEN_REFRESH_MS) {
          cached = { value: (await Deno.readTextFile(file)).trim(), readAtMs: nowMs };
        }
        return cached.value;
      };
    }
    return new KubeClient({
      ...options,
      server: access.server,
      httpClient,
      ...(token ? { token } : {}),
    });
  }

  /** Sends one request and returns the response; non-2xx answers throw `KubeApiError`. */
  async request(
    method: string,
    path: string,
    what: string,
    options: RequestOptions = {},
  ): Promise<Response> {
    const url = new URL(this.#server + path);
    for (const [k, v] of Object.entries(options.query ?? {})) {
      if (v !== undefined) url.searchParams.set(k, String(v));
    }
    const headers = new Headers({ "Accept": "application/json", "User-Agent": this.#userAgent });
    const token = this.#token ? await this.#token() : undefined;
    if (token) headers.set("Authorization", `Bearer ${token}`);
    let body: string | undefined;
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers.set("Content-Type", options.contentType ?? "application/json");
    }
    const signals: AbortSignal[] = [];
    if (options.signal) signals.push(options.signal);
    if (!options.stream) signals.push(AbortSignal.timeout(this.#timeoutMs));
    const signal = signals.length === 1 ? signals[0] : AbortSignal.any(signals);
    let res: Response;
    try {
      res = await this.#fetch(
        new Request(url, { method, headers, ...(body !== undefined ? { body } : {}), signal }),
      );
    } catch (cause) {
      if (options.signal?.aborted) throw cause;
      throw new KubeApiError(`Cannot ${what}: request failed`, { status: 0, cause });
    }
    if (res.ok) return res;
    const text = await res.text().catch(() => "");
    let status: Status | undefined;
    try {
      const parsed = StatusSchema.safeParse(JSON.parse(text));
      if (parsed.success) status = parsed.data;
    } catch {
      status = undefined; // Not JSON: the raw text is the message.
    }
    const apiMessage = status?.message ?? text.slice(0, 500);
    throw new KubeApiError(`Cannot ${what}: ${res.status} ${apiMessage}`, {
      status: res.status,
      reason: status?.reason ?? "",
      apiMessage,
    });
  }

  /** Returns a typed client for one resource whose objects parse with `schema`. */
  resource<T extends ObjectLike, W = T>(
    descriptor: ResourceDescriptor,
    schema: z.ZodType<T, W>,
  ): ResourceClient<T, W> {
    return new ResourceClient<T, W>(this, descriptor, schema);
  }

  /** Closes the underlying HTTP client. */
  [Symbol.dispose](): void {
    this.#httpClient?.close();
  }
}

/** A JSON-patch (RFC 6902) operation. */
export type JsonPatchOp =
  | { readonly op: "add" | "replace" | "test"; readonly path: string; readonly value: unknown }
  | { readonly op: "remove"; readonly path: string }
  | { readonly op: "move" | "copy"; readonly from: string; readonly path: string };

/** A patch body of one of the API server's patch types. */
export type Patch =
  | { readonly type: "json"; readonly ops: readonly JsonPatchOp[] }
  | { readonly type: "merge"; readonly body: unknown }
  | { readonly type: "strategic"; readonly body: unknown }
  | { readonly type: "apply"; readonly body: unknown; readonly force?: boolean };

const PATCH_CONTENT_TYPES: Record<Patch["type"], string> = {
  json: "application/json-patch+json",
  merge: "application/merge-patch+json",
  strategic: "application/strategic-merge-patch+json",
  apply: "application/apply-patch+yaml",
};

/** Escapes one path segment for a JSON pointer (`~` → `~0`, `/` → `~1`). */
export function jsonPointerEscape(segment: string): string {
  return segment.replaceAll("~", "~0").replaceAll("/", "~1");
}

/** Options that address objects. */
export interface ObjectOptions {
  /** Namespace; required for namespaced resources. */
  namespace?: string | undefined;
  /** Cancels the request. */
  signal?: AbortSignal | undefined;
}

/** Options of get. */
export interface GetOptions extends ObjectOptions {
  /** Subresource to read (`status`, `resize`). */
  subresource?: string;
}

/** Options of list. */
export interface ListOptions {
  /** Namespace; all namespaces when omitted. */
  namespace?: string | undefined;
  /** Label selector, e.g. `app=x,tier!=y`. */
  labelSelector?: string | undefined;
  /** Field selector, e.g. `spec.nodeName=n1`. */
  fieldSelector?: string | undefined;
  /** Page size; default 500. */
  limit?: number;
  /** Cancels the request. */
  signal?: AbortSignal | undefined;
}

/** An object the API returned that did not match the schema. */
export interface InvalidObject {
  /** Object name, when readable. */
  readonly name: string;
  /** Object namespace, when readable. */
  readonly namespace: string;
  /** Object resourceVersion, when readable. */
  readonly resourceVersion: string;
  /** Why it did not parse. */
  readonly error: ParseError;
}

/** The result of list: valid items, the list's resourceVersion, and items that failed to parse. */
export interface ListResult<T> {
  /** Items that parsed. */
  readonly items: T[];
  /** The collection resourceVersion to start a watch from. */
  readonly resourceVersion: string;
  /** Items that did not parse (left out of `items`). */
  readonly invalid: InvalidObject[];
}

/** Options of watch. */
export interface WatchOptions extends ListOptions {
  /** Start after this resourceVersion (from list or the last event). */
  resourceVersion?: string | undefined;
  /** Ask the server for BOOKMARK events; default true. */
  allowBookmarks?: boolean;
  /** Server-side timeout of this watch call; default 300 s. */
  timeoutSeconds?: number;
}

/** One event of a watch stream. */
export type WatchEvent<T> =
  | { readonly type: "ADDED" | "MODIFIED" | "DELETED"; readonly object: T }
  | { readonly type: "BOOKMARK"; readonly resourceVersion: string }
  | {
    readonly type: "INVALID";
    readonly eventType: "ADDED" | "MODIFIED" | "DELETED";
    readonly object: InvalidObject;
  };

/** Options of create and replace. */
export interface WriteOptions extends ObjectOptions {
  /** Subresource to write (`status`, `resize`). */
  subresource?: string;
  /** Server-side dry run. */
  dryRun?: boolean;
}

/** Options of delete. */
export interface DeleteOptions extends ObjectOptions {
  /** Only delete when the object still has this uid / resourceVersion. */
  preconditions?: { uid?: string; resourceVersion?: string };
  /** How dependents are deleted. */
  propagationPolicy?: "Orphan" | "Background" | "Foreground";
  /** Grace period override in seconds. */
  gracePeriodSeconds?: number;
}

function metaOf(raw: unknown): { name: string; namespace: string; resourceVersion: string } {
  const m = typeof raw === "object" && raw !== null && "metadata" in raw ? raw.metadata : undefined;
  const get = (k: string) =>
    typeof m === "object" && m !== null && k in m
      ? String((m as Record<string, unknown>)[k] ?? "")
      : "";
  return {
    name: get("name"),
    namespace: get("namespace"),
    resourceVersion: get("resourceVersion"),
  };
}

function zodPaths(err: z.ZodError): string[] {
  return err.issues.map((i) => i.path.map(String).join("."));
}

/** Typed operations on one resource. */
export class ResourceClient<T extends ObjectLike, W = T> {
  readonly #client: KubeClient;
  readonly #schema: z.ZodType<T, W>;
  /** Where the resource lives. */
  readonly descriptor: ResourceDescriptor;

  /** Creates a resource client; prefer `KubeClient.resource`. */
  constructor(client: KubeClient, descriptor: ResourceDescriptor, schema: z.ZodType<T, W>) {
    this.#client = client;
    this.descriptor = descriptor;
    this.#schema = schema;
  }

  #path(namespace: string | undefined, name?: string, subresource?: string): string {
    const d = this.descriptor;
    let p = d.group === "" ? `/api/${d.version}` : `/apis/${d.group}/${d.version}`;
    if (d.namespaced && namespace) p += `/namespaces/${encodeURIComponent(namespace)}`;
    p += `/${d.plural}`;
    if (name !== undefined) p += `/${encodeURIComponent(name)}`;
    if (subresource !== undefined) p += `/${subresource}`;
    return p;
  }

  #objectPath(name: string, namespace: string | undefined, subresource?: string): string {
    if (this.descriptor.namespaced && !namespace) {
      throw new InvariantError(`${this.descriptor.kind} "${name}" needs a namespace`);
    }
    return this.#path(namespace, name, subresource);
  }

  #key(name: string, namespace: string | undefined): string {
    return `${this.descriptor.kind} "${namespace ? `${namespace}/` : ""}${name}"`;
  }

  /** Parses one object with the schema, throwing ParseError on mismatch. */
  parse(raw: unknown): T {
    const r = this.#schema.safeParse(raw);
    if (r.success) return r.data;
    const m = metaOf(raw);
    throw new ParseError(
      `Cannot parse ${this.#key(m.name, m.namespace)}: ${
        r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")
      }`,
      { paths: zodPaths(r.error), cause: r.error },
    );
  }

  #tryParse(raw: unknown): { ok: true; value: T } | { ok: false; invalid: InvalidObject } {
    try {
      return { ok: true, value: this.parse(raw) };
    } catch (error) {
      if (!(error instanceof ParseError)) throw error;
      return { ok: false, invalid: { ...metaOf(raw), error } };
    }
  }

  async #json(res: Response, what: string): Promise<unknown> {
    try {
      return await res.json();
    } catch (cause) {
      throw new KubeApiError(`Cannot ${what}: response is not JSON`, {
        status: res.status,
        cause,
      });
    }
  }

  /** Reads one object (or one of its subresources); 404 throws `KubeApiError`. */
  async get(name: string, options: GetOptions = {}): Promise<T> {
    const what = `get ${this.#key(name, options.namespace)}`;
    const res = await this.#client.request(
      "GET",
      this.#objectPath(name, options.namespace, options.subresource),
      what,
      { signal: options.signal },
    );
    return this.parse(await this.#json(res, what));
  }

  /** Lists objects (all pages); returns items, the list resourceVersion and unparseable items. */
  async list(options: ListOptions = {}): Promise<ListResult<T>> {
    const items: T[] = [];
    const invalid: InvalidObject[] = [];
    let cont: string | undefined;
    let resourceVersion = "";
    const what = `list ${this.descriptor.kind}`;
    do {
      const res = await this.#client.request("GET", this.#path(options.namespace), what, {
        query: {
          labelSelector: options.labelSelector,
          fieldSelector: options.fieldSelector,
          limit: options.limit ?? 500,
          continue: cont,
        },
        signal: options.signal,
      });
      const body = await this.#json(res, what);
      if (typeof body !== "object" || body === null || !("items" in body)) {
        throw new KubeApiError(`Cannot ${what}: response has no items`, { status: res.status });
      }
      const meta = "metadata" in body && typeof body.metadata === "object" && body.metadata
        ? body.metadata as Record<string, unknown>
        : {};
      resourceVersion = typeof meta.resourceVersion === "string" ? meta.resourceVersion : "";
      cont = typeof meta.continue === "string" && meta.continue !== "" ? meta.continue : undefined;
      for (const raw of Array.isArray(body.items) ? body.items : []) {
        const r = this.#tryParse(raw);
        if (r.ok) items.push(r.value);
        else invalid.push(r.invalid);
      }
    } while (cont !== undefined);
    return { items, resourceVersion, invalid };
  }

  /**
   * Watches objects from `resourceVersion`. Ends when the server closes the stream or the signal
   * aborts; a 410 Gone (as HTTP status or ERROR event) throws `KubeApiError` with status 410.
   */
  async *watch(options: WatchOptions = {}): AsyncGenerator<WatchEvent<T>, void, undefined> {
    const what = `watch ${this.descriptor.kind}`;
    let res: Response;
    try {
      res = await this.#client.request("GET", this.#path(options.namespace), what, {
        query: {
          watch: 1,
          labelSelector: options.labelSelector,
          fieldSelector: options.fieldSelector,
          resourceVersion: options.resourceVersion,
          allowWatchBookmarks: options.allowBookmarks ?? true,
          timeoutSeconds: options.timeoutSeconds ?? 300,
        },
        signal: options.signal,
        stream: true,
      });
    } catch (error) {
      if (options.signal?.aborted) return;
      throw error;
    }
    if (!res.body) return;
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    try {
      while (true) {
        let chunk: ReadableStreamReadResult<string>;
        try {
          chunk = await reader.read();
        } catch (error) {
          if (options.signal?.aborted) return;
          throw new KubeApiError(`Cannot ${what}: stream broke`, { status: 0, cause: error });
        }
        if (chunk.done) break;
        buf += chunk.value;
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (line === "") continue;
          const ev = this.#decodeEvent(line, what);
          if (ev) yield ev;
        }
      }
      const rest = buf.trim();
      if (rest !== "") {
        const ev = this.#decodeEvent(rest, what);
        if (ev) yield ev;
      }
    } finally {
      await reader.cancel().catch(() => undefined);
    }
  }

  #decodeEvent(line: string, what: string): WatchEvent<T> | undefined {
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch (cause) {
      throw new KubeApiError(`Cannot ${what}: bad event line`, { status: 0, cause });
    }
    if (typeof raw !== "object" || raw === null || !("type" in raw) || !("object" in raw)) {
      throw new KubeApiError(`Cannot ${what}: bad event`, { status: 0 });
    }
    const type = raw.type;
    const obj = raw.object;
    switch (type) {
      case "ADDED":
      case "MODIFIED":
      case "DELETED": {
        const r = this.#tryParse(obj);
        return r.ok
          ? { type, object: r.value }
          : { type: "INVALID", eventType: type, object: r.invalid };
      }
      case "BOOKMARK":
        return { type: "BOOKMARK", resourceVersion: metaOf(obj).resourceVersion };
      case "ERROR": {
        const st = StatusSchema.safeParse(obj);
        const code = st.success ? st.data.code ?? 500 : 500;
        const apiMessage = st.success ? st.data.message ?? "" : "";
        throw new KubeApiError(`Cannot ${what}: ${code} ${apiMessage}`, {
          status: code,
          reason: st.success ? st.data.reason ?? "" : "",
          apiMessage,
        });
      }
      default:
        return undefined; // Unknown event types are skipped, as client-go does.
    }
  }

  #writeQuery(options: WriteOptions | ObjectOptions & { dryRun?: boolean }) {
    return {
      fieldManager: this.#client.fieldManager,
      dryRun: options.dryRun ? "All" : undefined,
    };
  }

  /** Creates an object; 409 when it exists. */
  async create(obj: W, options: WriteOptions = {}): Promise<T> {
    const m = metaOf(obj);
    const namespace = options.namespace ?? (m.namespace || undefined);
    const what = `create ${this.#key(m.name, namespace)}`;
    if (this.descriptor.namespaced && !namespace) {
      throw new InvariantError(`Cannot ${what}: no namespace`);
    }
    const res = await this.#client.request("POST", this.#path(namespace), what, {
      body: { apiVersion: apiVersionOf(this.descriptor), kind: this.descriptor.kind, ...obj },
      query: this.#writeQuery(options),
      signal: options.signal,
    });
    return this.parse(await this.#json(res, what));
  }

  /** Replaces an object (PUT), optimistic on `metadata.resourceVersion`; 409 when stale. */
  async replace(obj: W, options: WriteOptions = {}): Promise<T> {
    const m = metaOf(obj);
    const namespace = options.namespace ?? (m.namespace || undefined);
    const what = `replace ${this.#key(m.name, namespace)}${
      options.subresource ? `/${options.subresource}` : ""
    }`;
    const res = await this.#client.request(
      "PUT",
      this.#objectPath(m.name, namespace, options.subresource),
      what,
      {
        body: { apiVersion: apiVersionOf(this.descriptor), kind: this.descriptor.kind, ...obj },
        query: this.#writeQuery(options),
        signal: options.signal,
      },
    );
    return this.parse(await this.#json(res, what));
  }

  /** Patches an object or subresource; a failed JSON-patch `test` answers 422. */
  async patch(name: string, patch: Patch, options: WriteOptions = {}): Promise<T> {
    const what = `patch ${this.#key(name, options.namespace)}${
      options.subresource ? `/${options.subresource}` : ""
    }`;
    const res = await this.#client.request(
      "PATCH",
      this.#objectPath(name, options.namespace, options.subresource),
      what,
      {
        body: patch.type === "json" ? patch.ops : patch.body,
        contentType: PATCH_CONTENT_TYPES[patch.type],
        query: {
          ...this.#writeQuery(options),
          force: patch.type === "apply" && patch.force ? true : undefined,
        },
        signal: options.signal,
      },
    );
    return this.parse(await this.#json(res, what));
  }

  /** Deletes an object; 404 when already gone, 409 when a precondition fails. */
  async delete(name: string, options: DeleteOptions = {}): Promise<void> {
    const what = `delete ${this.#key(name, options.namespace)}`;
    const body: Record<string, unknown> = { apiVersion: "v1", kind: "DeleteOptions" };
    if (options.preconditions) body.preconditions = options.preconditions;
    if (options.propagationPolicy) body.propagationPolicy = options.propagationPolicy;
    if (options.gracePeriodSeconds !== undefined) {
      body.gracePeriodSeconds = options.gracePeriodSeconds;
    }
    const res = await this.#client.request(
      "DELETE",
      this.#objectPath(name, options.namespace),
      what,
      { body, signal: options.signal },
    );
    await res.body?.cancel();
  }

  /** POSTs to a subresource (e.g. `pods/<name>/binding`) and returns the raw JSON answer. */
  async createSubresource(
    name: string,
    subresource: string,
    body: unknown,
    options: ObjectOptions = {},
  ): Promise<unknown> {
    const what = `create ${this.#key(name, options.namespace)}/${subresource}`;
    const res = await this.#client.request(
      "POST",
      this.#objectPath(name, options.namespace, subresource),
      what,
      { body, query: this.#writeQuery(options), signal: options.signal },
    );
    return await this.#json(res, what);
  }
}
