/**
 * The controller's view into a running guest: probes its CPU and memory (runner `/cpu_current`,
 * QMP `query-hotpluggable-cpus`, `query-memory-size-summary`, virtio-mem `requested-size`) and
 * applies scaling steps (vCPU hot-plug/unplug, runner `/cpu_change`, virtio-mem resize). One QMP
 * connection per call, 2 s dial timeout. It decides nothing: the core says what to do.
 * @module
 */
import { errorChainMessage, RemoteError } from "../../lib/errors.ts";
import { QMP_DIAL_TIMEOUT_MS, type QmpAddress, withQmp } from "../../lib/qmp/client.ts";
import {
  countPluggedCpus,
  getVirtioMemRequestedSize,
  plugCpu,
  queryMemorySizeSummary,
  setVirtioMemRequestedSize,
  totalMemoryBytes,
  unplugCpu,
} from "../../lib/qmp/commands.ts";
import {
  encodeVCpus,
  RUNNER_CALL_TIMEOUT_MS,
  RUNNER_PATH_CPU_CHANGE,
  RUNNER_PATH_CPU_CURRENT,
  VCpuCurrentSchema,
} from "../../api/runner_api.ts";
import type { CpuScalingMode, VirtualMachine } from "../../api/virtualmachine.ts";
import type { GuestProbe } from "../core/reconcile.ts";

/** Where a guest's runner and QMP listen. */
export interface GuestTarget {
  /** Runner pod IP. */
  readonly podIP: string;
  /** `spec.qmp`. */
  readonly qmpPort: number;
  /** `spec.runnerPort`. */
  readonly runnerPort: number;
  /** CPU scaling mode. */
  readonly mode: CpuScalingMode;
  /** Whether the VM has a virtio-mem device (memorySlots.min < max). */
  readonly hasVirtioMem: boolean;
}

/** Operations on a running guest (the real one talks QMP/HTTP; tests pass a fake). */
export interface GuestIo {
  /** Reads what the guest has; never throws (failures come back as `ok: false`). */
  probe(target: GuestTarget, signal?: AbortSignal): Promise<GuestProbe>;
  /** Hot-adds one vCPU. */
  plugCpu(target: GuestTarget, signal?: AbortSignal): Promise<void>;
  /** Hot-removes one hot-plugged vCPU. */
  unplugCpu(target: GuestTarget, signal?: AbortSignal): Promise<void>;
  /** Tells the runner the CPU amount (`POST /cpu_change`). */
  runnerCpuChange(target: GuestTarget, milliCpu: number, signal?: AbortSignal): Promise<void>;
  /** Sets the virtio-mem requested size. */
  setVirtioMemSize(target: GuestTarget, bytes: number, signal?: AbortSignal): Promise<void>;
}

/** The target of a VM whose runner pod has `podIP`. */
export function guestTarget(vm: VirtualMachine, podIP: string): GuestTarget {
  const g = vm.spec.guest;
  return {
    podIP,
    qmpPort: vm.spec.qmp,
    runnerPort: vm.spec.runnerPort,
    mode: vm.spec.cpuScalingMode ?? "QmpScaling",
    hasVirtioMem: g.memorySlots.min !== g.memorySlots.max,
  };
}

function hostForUrl(ip: string): string {
  return ip.includes(":") ? `[${ip}]` : ip;
}

/** Failure reason used when the runner API fails. */
export const REASON_RUNNER_FAILED = "RunnerFailed";
/** Failure reason used when QMP fails. */
export const REASON_QMP_FAILED = "QmpFailed";

/** The real guest io: QMP over TCP and the runner's HTTP API. */
export class RealGuestIo implements GuestIo {
  #qmp(t: GuestTarget): QmpAddress {
    return { transport: "tcp", hostname: t.podIP, port: t.qmpPort };
  }

  #signal(signal: AbortSignal | undefined): AbortSignal {
    const timeout = AbortSignal.timeout(RUNNER_CALL_TIMEOUT_MS);
    return signal ? AbortSignal.any([signal, timeout]) : timeout;
  }

  async #cpuCurrent(t: GuestTarget, signal?: AbortSignal): Promise<number> {
    const url = `http://${hostForUrl(t.podIP)}:${t.runnerPort}${RUNNER_PATH_CPU_CURRENT}`;
    const res = await fetch(url, { signal: this.#signal(signal) });
    const text = await res.text();
    if (!res.ok) {
      throw new RemoteError(`Cannot read ${url}: ${res.status} ${text.slice(0, 200)}`, {
        status: res.status,
      });
    }
    const parsed = VCpuCurrentSchema.safeParse(JSON.parse(text));
    if (!parsed.success) {
      throw new RemoteError(`Cannot read ${url}: bad body ${text.slice(0, 200)}`);
    }
    return parsed.data.VCPUs;
  }

  /** Reads the guest's CPU and memory. */
  async probe(t: GuestTarget, signal?: AbortSignal): Promise<GuestProbe> {
    let cgroupMilliCpu: number;
    try {
      cgroupMilliCpu = await this.#cpuCurrent(t, signal);
    } catch (error) {
      return {
        ok: false,
        reason: REASON_RUNNER_FAILED,
        message: `Cannot read the runner's CPU: ${errorChainMessage(error)}`,
      };
    }
    try {
      return await withQmp(this.#qmp(t), async (qmp) => {
        const opts = signal ? { signal } : {};
        const pluggedCpus = t.mode === "SysfsScaling"
          ? Math.ceil(cgroupMilliCpu / 1000)
          : await countPluggedCpus(qmp, opts);
        const memoryBytes = totalMemoryBytes(await queryMemorySizeSummary(qmp, opts));
        const virtioMemRequestedBytes = t.hasVirtioMem
          ? await getVirtioMemRequestedSize(qmp, opts)
          : undefined;
        return {
          ok: true as const,
          guest: { cgroupMilliCpu, pluggedCpus, memoryBytes, virtioMemRequestedBytes },
        };
      }, { timeoutMs: QMP_DIAL_TIMEOUT_MS, ...(signal ? { signal } : {}) });
    } catch (error) {
      return {
        ok: false,
        reason: REASON_QMP_FAILED,
        message: `Cannot query QMP at ${t.podIP}:${t.qmpPort}: ${errorChainMessage(error)}`,
      };
    }
  }

  /** Hot-adds one vCPU. */
  async plugCpu(t: GuestTarget, signal?: AbortSignal): Promise<void> {
    await withQmp(this.#qmp(t), async (qmp) => {
      const slot = await plugCpu(qmp, signal ? { signal } : {});
      if (slot === undefined) throw new RemoteError("no free vCPU slot left");
    }, { timeoutMs: QMP_DIAL_TIMEOUT_MS });
  }

  /** Hot-removes one vCPU. */
  async unplugCpu(t: GuestTarget, signal?: AbortSignal): Promise<void> {
    await withQmp(this.#qmp(t), async (qmp) => {
      const slot = await unplugCpu(qmp, signal ? { signal } : {});
      if (slot === undefined) throw new RemoteError("no hot-plugged vCPU left to remove");
    }, { timeoutMs: QMP_DIAL_TIMEOUT_MS });
  }

  /** Sets the virtio-mem requested size. */
  async setVirtioMemSize(t: GuestTarget, bytes: number, signal?: AbortSignal): Promise<void> {
    await withQmp(
      this.#qmp(t),
      (qmp) => setVirtioMemRequestedSize(qmp, bytes, signal ? { signal } : {}),
      { timeoutMs: QMP_DIAL_TIMEOUT_MS },
    );
  }

  /** POSTs `/cpu_change` to the runner. */
  async runnerCpuChange(t: GuestTarget, milliCpu: number, signal?: AbortSignal): Promise<void> {
    const url = `http://${hostForUrl(t.podIP)}:${t.runnerPort}${RUNNER_PATH_CPU_CHANGE}`;
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(encodeVCpus(milliCpu)),
      signal: this.#signal(signal),
    });
    const text = await res.text();
    if (!res.ok) {
      throw new RemoteError(`Cannot POST ${url}: ${res.status} ${text.slice(0, 200)}`, {
        status: res.status,
      });
    }
  }
}
