/**
 * An in-process fake QMP server for tests: speaks the real wire format (greeting, capabilities
 * negotiation, `id` echo, error objects, events, CRLF line ends) over TCP or a Unix socket and
 * models just enough of a VM — vCPU slots, a virtio-mem device, run state, migration — for the
 * runner and controller to be tested without QEMU. It must never be used outside tests.
 * @module
 */
import type { QmpAddress } from "./client.ts";

/** The VM the fake pretends to run; tests read and change it directly. */
export interface FakeVmState {
  /** vCPU model name reported as the slot type. */
  cpuType: string;
  /** Number of vCPU slots (`maxcpus`). */
  maxCpus: number;
  /** Cores plugged at boot (not removable). */
  bootCores: Set<number>;
  /** Cores plugged with `device_add`, by core → device id. */
  hotplugged: Map<number, string>;
  /** Base memory, bytes. */
  baseMemoryBytes: number;
  /** The virtio-mem device, when the VM has one. */
  virtioMem:
    | { requestedBytes: number; pluggedBytes: number; maxBytes: number; blockBytes: number }
    | undefined;
  /** When true, virtio-mem `size` follows `requested-size` at once; else tests move it. */
  virtioMemFollowsInstantly: boolean;
  /** `query-status` status. */
  status: string;
  /** `query-kvm` `enabled` (true: KVM, false: TCG). */
  kvm: boolean;
  /** `query-migrate` status; undefined before any migration. */
  migrationStatus: string | undefined;
  /** Capabilities and parameters last set. */
  migrationCapabilities: Record<string, boolean>;
  /** Parameters last set with `migrate-set-parameters`. */
  migrationParameters: Record<string, unknown>;
}

/** A command the fake received. */
export interface FakeQmpCall {
  /** Command name. */
  readonly execute: string;
  /** Its arguments. */
  readonly arguments: Record<string, unknown> | undefined;
}

/** A handler override: return a value for `{"return": value}`, or throw a {@linkcode FakeQmpError}. */
export type FakeQmpHandler = (
  args: Record<string, unknown> | undefined,
  vm: FakeVmState,
) => unknown;

/** Returned by a handler to send no reply at all (to test timeouts). */
export const FAKE_QMP_NO_REPLY: unique symbol = Symbol("no reply");

/** Thrown by a handler to produce an error reply. */
export class FakeQmpError extends Error {
  /** QMP error class. */
  readonly errorClass: string;
  /** Creates an error reply. */
  constructor(errorClass: string, desc: string) {
    super(desc);
    this.name = "FakeQmpError";
    this.errorClass = errorClass;
  }
}

/** Options for {@linkcode startFakeQmpServer}. */
export interface FakeQmpServerOptions {
  /** Listen on this Unix socket path instead of a random loopback TCP port. */
  unixPath?: string;
  /** Initial VM; fields not given get defaults (2 of 4 CPUs, 1 GiB base, 3 GiB virtio-mem). */
  vm?: Partial<FakeVmState>;
  /** Extra or overriding command handlers. */
  handlers?: Record<string, FakeQmpHandler>;
  /** Skip the greeting (to test handshake timeouts). */
  silent?: boolean;
}

/** A running fake server. */
export interface FakeQmpServer extends AsyncDisposable {
  /** Where to connect. */
  readonly address: QmpAddress;
  /** The modelled VM. */
  readonly vm: FakeVmState;
  /** Every command received, in order. */
  readonly calls: FakeQmpCall[];
  /** Sends an event to every connected client. */
  emit(event: string, data?: Record<string, unknown>): void;
  /** Closes the listener and every connection. */
  close(): Promise<void>;
}

const GiB = 1024 * 1024 * 1024;

function defaultVm(): FakeVmState {
  return {
    cpuType: "max-x86_64-cpu",
    maxCpus: 4,
    bootCores: new Set([0, 1]),
    hotplugged: new Map(),
    baseMemoryBytes: GiB,
    virtioMem: {
      requestedBytes: 0,
      pluggedBytes: 0,
      maxBytes: 3 * GiB,
      blockBytes: 8 * 1024 * 1024,
    },
    virtioMemFollowsInstantly: true,
    status: "running",
    kvm: true,
    migrationStatus: undefined,
    migrationCapabilities: {},
    migrationParameters: {},
  };
}

function num(args: Record<string, unknown> | undefined, key: string): number {
  const v = args?.[key];
  if (typeof v !== "number" || !Number.isInteger(v)) {
    throw new FakeQmpError("GenericError", `Parameter '${key}' expects a number`);
  }
  return v;
}

function str(args: Record<string, unknown> | undefined, key: string): string {
  const v = args?.[key];
  if (typeof v !== "string") {
    throw new FakeQmpError("GenericError", `Parameter '${key}' is missing`);
  }
  return v;
}

function slotPath(vm: FakeVmState, core: number): string | undefined {
  if (vm.bootCores.has(core)) return `/machine/unattached/device[${core}]`;
  const id = vm.hotplugged.get(core);
  return id === undefined ? undefined : `/machine/peripheral/${id}`;
}

function builtinHandlers(
  vm: FakeVmState,
  emit: (event: string, data?: Record<string, unknown>) => void,
): Record<string, FakeQmpHandler> {
  return {
    "query-hotpluggable-cpus": () => {
      const out: unknown[] = [];
      // QEMU lists the highest core first; keep that so callers cannot depend on the order.
      for (let core = vm.maxCpus - 1; core >= 0; core--) {
        const path = slotPath(vm, core);
        out.push({
          type: vm.cpuType,
          "vcpus-count": 1,
          props: { "core-id": core, "thread-id": 0, "socket-id": 0 },
          ...(path === undefined ? {} : { "qom-path": path }),
        });
      }
      return out;
    },
    "query-cpus-fast": () => {
      const cores = [...vm.bootCores, ...vm.hotplugged.keys()].sort((a, b) => a - b);
      return cores.map((core, i) => ({
        "cpu-index": i,
        "qom-path": slotPath(vm, core),
        "thread-id": 1000 + core,
        props: { "core-id": core, "thread-id": 0, "socket-id": 0 },
        target: "x86_64",
      }));
    },
    device_add: (args) => {
      const driver = str(args, "driver");
      const id = str(args, "id");
      if (driver !== vm.cpuType) {
        throw new FakeQmpError("GenericError", `'${driver}' is not a valid device model name`);
      }
      const core = num(args, "core-id");
      if (core >= vm.maxCpus) {
        throw new FakeQmpError(
          "GenericError",
          `Invalid CPU core-id: ${core} must be in range 0:${vm.maxCpus - 1}`,
        );
      }
      if (slotPath(vm, core) !== undefined) {
        throw new FakeQmpError("GenericError", `CPU[${core}] with APIC ID ${core} exists`);
      }
      if ([...vm.hotplugged.values()].includes(id)) {
        throw new FakeQmpError("GenericError", `Duplicate device ID '${id}'`);
      }
      vm.hotplugged.set(core, id);
      return {};
    },
    device_del: (args) => {
      const id = str(args, "id");
      for (const [core, dev] of vm.hotplugged) {
        if (id === dev || id === `/machine/peripheral/${dev}`) {
          vm.hotplugged.delete(core);
          emit("DEVICE_DELETED", { device: dev, path: `/machine/peripheral/${dev}` });
          return {};
        }
      }
      throw new FakeQmpError("DeviceNotFound", `Device '${id}' not found`);
    },
    "qom-get": (args) => {
      const path = str(args, "path");
      const prop = str(args, "property");
      if (path !== "vm0" || vm.virtioMem === undefined) {
        throw new FakeQmpError("DeviceNotFound", `Device '${path}' not found`);
      }
      if (prop === "requested-size") return vm.virtioMem.requestedBytes;
      if (prop === "size") return vm.virtioMem.pluggedBytes;
      throw new FakeQmpError("GenericError", `Property '${prop}' not found`);
    },
    "qom-set": (args) => {
      const path = str(args, "path");
      const prop = str(args, "property");
      const mem = vm.virtioMem;
      if (path !== "vm0" || mem === undefined) {
        throw new FakeQmpError("DeviceNotFound", `Device '${path}' not found`);
      }
      if (prop !== "requested-size") {
        throw new FakeQmpError("GenericError", `Property '${prop}' not found`);
      }
      const v = num(args, "value");
      if (v % mem.blockBytes !== 0) {
        throw new FakeQmpError(
          "GenericError",
          `'requested-size' property has to be multiples of '${mem.blockBytes}'`,
        );
      }
      if (v > mem.maxBytes || v < 0) {
        throw new FakeQmpError(
          "GenericError",
          `'requested-size' cannot exceed the memory backend size`,
        );
      }
      mem.requestedBytes = v;
      if (vm.virtioMemFollowsInstantly) mem.pluggedBytes = v;
      return {};
    },
    "query-memory-size-summary": () => ({
      "base-memory": vm.baseMemoryBytes,
      "plugged-memory": vm.virtioMem?.pluggedBytes ?? 0,
    }),
    "query-memory-devices": () =>
      vm.virtioMem === undefined ? [] : [{
        type: "virtio-mem",
        data: {
          id: "vm0",
          memaddr: 4294967296,
          node: 0,
          "requested-size": vm.virtioMem.requestedBytes,
          size: vm.virtioMem.pluggedBytes,
          "max-size": vm.virtioMem.maxBytes,
          "block-size": vm.virtioMem.blockBytes,
          memdev: "/objects/vmem0",
        },
      }],
    "query-status": () => ({
      running: vm.status === "running",
      singlestep: false,
      status: vm.status,
    }),
    "query-kvm": () => ({ enabled: vm.kvm, present: vm.kvm }),
    system_powerdown: () => {
      emit("POWERDOWN");
      return {};
    },
    "migrate-set-capabilities": (args) => {
      const caps = args?.capabilities;
      if (!Array.isArray(caps)) {
        throw new FakeQmpError("GenericError", "Parameter 'capabilities' is missing");
      }
      for (const c of caps) {
        const { capability, state } = c as { capability: string; state: boolean };
        vm.migrationCapabilities[capability] = state;
      }
      return {};
    },
    "migrate-set-parameters": (args) => {
      Object.assign(vm.migrationParameters, args ?? {});
      return {};
    },
    migrate: (args) => {
      str(args, "uri");
      vm.migrationStatus = "active";
      return {};
    },
    "query-migrate": () =>
      vm.migrationStatus === undefined ? {} : {
        status: vm.migrationStatus,
        "total-time": 1200,
        "setup-time": 3,
        ...(vm.migrationStatus === "completed" ? { downtime: 40 } : { "expected-downtime": 300 }),
        ram: { transferred: 1000, remaining: 0, total: 1000, duplicate: 0, normal: 0 },
      },
    migrate_cancel: () => {
      if (vm.migrationStatus === "active") vm.migrationStatus = "cancelled";
      return {};
    },
  };
}

/** Starts a fake QMP server on loopback (random port) or a Unix socket. */
export function startFakeQmpServer(options: FakeQmpServerOptions = {}): FakeQmpServer {
  const vm: FakeVmState = { ...defaultVm(), ...options.vm };
  const calls: FakeQmpCall[] = [];
  const conns = new Set<Deno.Conn>();
  const encoder = new TextEncoder();
  const send = (conn: Deno.Conn, msg: unknown) => {
    conn.write(encoder.encode(JSON.stringify(msg) + "\r\n")).catch(() => conns.delete(conn));
  };
  const emit = (event: string, data?: Record<string, unknown>) => {
    const now = Date.now();
    const msg = {
      event,
      ...(data === undefined ? {} : { data }),
      timestamp: { seconds: Math.floor(now / 1000), microseconds: (now % 1000) * 1000 },
    };
    for (const c of conns) send(c, msg);
  };
  const handlers = { ...builtinHandlers(vm, emit), ...options.handlers };

  const listener = options.unixPath === undefined
    ? Deno.listen({ hostname: "127.0.0.1", port: 0, transport: "tcp" })
    : Deno.listen({ path: options.unixPath, transport: "unix" });
  const address: QmpAddress = options.unixPath === undefined
    ? { transport: "tcp", hostname: "127.0.0.1", port: (listener.addr as Deno.NetAddr).port }
    : { transport: "unix", path: options.unixPath };

  const serveConn = async (conn: Deno.Conn) => {
    conns.add(conn);
    if (!options.silent) {
      send(conn, {
        QMP: {
          version: { qemu: { micro: 0, minor: 2, major: 7 }, package: "fake" },
          capabilities: ["oob"],
        },
      });
    }
    let negotiated = false;
    const decoder = new TextDecoder();
    let buf = "";
    const chunk = new Uint8Array(65536);
    try {
      while (true) {
        const n = await conn.read(chunk);
        if (n === null) break;
        buf += decoder.decode(chunk.subarray(0, n), { stream: true });
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (line === "") continue;
          let req: { execute?: unknown; arguments?: unknown; id?: unknown };
          try {
            req = JSON.parse(line);
          } catch {
            send(conn, { error: { class: "GenericError", desc: "JSON parse error" } });
            continue;
          }
          const idPart = req.id === undefined ? {} : { id: req.id };
          if (typeof req.execute !== "string") {
            send(conn, {
              error: { class: "GenericError", desc: "QMP input lacks member 'execute'" },
              ...idPart,
            });
            continue;
          }
          const args = req.arguments as Record<string, unknown> | undefined;
          calls.push({ execute: req.execute, arguments: args });
          if (req.execute === "qmp_capabilities") {
            negotiated = true;
            send(conn, { return: {}, ...idPart });
            continue;
          }
          if (!negotiated) {
            send(conn, {
              error: {
                class: "CommandNotFound",
                desc: "Expecting capabilities negotiation with 'qmp_capabilities'",
              },
              ...idPart,
            });
            continue;
          }
          if (req.execute === "quit" && handlers.quit === undefined) {
            send(conn, { return: {}, ...idPart });
            emit("SHUTDOWN", { guest: false, reason: "host-qmp-quit" });
            vm.status = "shutdown";
            conn.close();
            conns.delete(conn);
            return;
          }
          const h = handlers[req.execute];
          if (h === undefined) {
            send(conn, {
              error: {
                class: "CommandNotFound",
                desc: `The command ${req.execute} has not been found`,
              },
              ...idPart,
            });
            continue;
          }
          try {
            const ret = h(args, vm);
            if (ret !== FAKE_QMP_NO_REPLY) send(conn, { return: ret, ...idPart });
          } catch (e) {
            if (e instanceof FakeQmpError) {
              send(conn, { error: { class: e.errorClass, desc: e.message }, ...idPart });
            } else throw e;
          }
        }
      }
    } catch (_connectionGone) {
      // The client closed the socket mid-read: nothing to answer.
    } finally {
      conns.delete(conn);
      try {
        conn.close();
      } catch (_alreadyClosed) {
        // Already closed by quit or by the client.
      }
    }
  };

  const acceptLoop = (async () => {
    try {
      for await (const conn of listener) void serveConn(conn);
    } catch (_listenerClosed) {
      // close() closes the listener.
    }
  })();

  const close = async () => {
    try {
      listener.close();
    } catch (_alreadyClosed) {
      // Idempotent.
    }
    for (const c of conns) {
      try {
        c.close();
      } catch (_alreadyClosed) {
        // Idempotent.
      }
    }
    conns.clear();
    await acceptLoop;
  };
  return { address, vm, calls, emit, close, [Symbol.asyncDispose]: close };
}
