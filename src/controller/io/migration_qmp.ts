/**
 * QMP operations of a live migration (reference §5.6): capabilities and parameters on both QEMUs,
 * `migrate` on the source to `tcp:<target>:20187`, progress, cancel, quit, and copying the source's
 * hot-plugged vCPU count to the target. One connection per call. It decides nothing.
 * @module
 */
import { MIGRATION_PORT } from "../../api/runner_api.ts";
import type { MigrationInfo } from "../../api/virtualmachine_migration.ts";
import { QMP_DIAL_TIMEOUT_MS, withQmp } from "../../lib/qmp/client.ts";
import {
  countPluggedCpus,
  migrate,
  migrateCancel,
  migrateSetCapabilities,
  migrateSetParameters,
  migrateStartPostcopy,
  plugCpu,
  queryMigrate,
  quit,
} from "../../lib/qmp/commands.ts";
import type { MigrateProgress } from "../core/migration.ts";

/** Migration settings from the migration's spec. */
export interface MigrationParams {
  /** `spec.allowPostCopy`. */
  readonly allowPostCopy: boolean;
  /** `spec.autoConverge`. */
  readonly autoConverge: boolean;
  /** `spec.incremental`. */
  readonly incremental: boolean;
  /** `spec.maxBandwidth`, bytes per second. */
  readonly maxBandwidthBytes: number;
}

/** QMP operations for migrations (real one below; tests pass a fake). */
export interface MigrationQmp {
  /** Hot-plugs vCPUs on the target until it has as many as the source. */
  syncTargetCpus(sourceIP: string, targetIP: string, qmpPort: number): Promise<void>;
  /** Configures both sides and starts the migration on the source. */
  start(sourceIP: string, targetIP: string, qmpPort: number, p: MigrationParams): Promise<void>;
  /** `query-migrate` on the source. */
  progress(sourceIP: string, qmpPort: number): Promise<MigrateProgress>;
  /** `migrate_cancel` on the source. */
  cancel(sourceIP: string, qmpPort: number): Promise<void>;
  /** `quit` a QEMU. */
  quit(ip: string, qmpPort: number): Promise<void>;
}

const XBZRLE_CACHE_BYTES = 256 * 1024 * 1024;

const addr = (ip: string, port: number) => ({ transport: "tcp" as const, hostname: ip, port });
const dial = { timeoutMs: QMP_DIAL_TIMEOUT_MS };

/** Real migration QMP. */
export class RealMigrationQmp implements MigrationQmp {
  /** Hot-plugs vCPUs on the target to match the source. */
  async syncTargetCpus(sourceIP: string, targetIP: string, qmpPort: number): Promise<void> {
    const want = await withQmp(addr(sourceIP, qmpPort), (q) => countPluggedCpus(q), dial);
    await withQmp(addr(targetIP, qmpPort), async (q) => {
      let have = await countPluggedCpus(q);
      while (have < want) {
        if (await plugCpu(q) === undefined) break;
        have++;
      }
    }, dial);
  }

  /** Sets capabilities/parameters on both sides and starts `migrate` on the source. */
  async start(sourceIP: string, targetIP: string, qmpPort: number, p: MigrationParams) {
    // Why no `compress` (the reference sets it): QEMU deprecated it in 8.2 and removed it in 9.1,
    // and with it on QEMU 7.2/TCG we saw a migrated guest die (stack-protector panic) right after
    // switch-over; without it the same test passes.
    const caps = [
      { capability: "postcopy-ram", state: p.allowPostCopy },
      { capability: "xbzrle", state: true },
      { capability: "auto-converge", state: p.autoConverge },
      { capability: "zero-blocks", state: true },
    ];
    const params = {
      "xbzrle-cache-size": XBZRLE_CACHE_BYTES,
      "max-bandwidth": p.maxBandwidthBytes,
      "multifd-compression": "zstd",
    };
    for (const ip of [targetIP, sourceIP]) {
      await withQmp(addr(ip, qmpPort), async (q) => {
        await migrateSetCapabilities(q, caps);
        await migrateSetParameters(q, params);
      }, dial);
    }
    await withQmp(addr(sourceIP, qmpPort), async (q) => {
      await migrate(q, {
        uri: `tcp:${targetIP}:${MIGRATION_PORT}`,
        inc: p.incremental,
        blk: !p.incremental,
      });
      if (p.allowPostCopy) await migrateStartPostcopy(q);
    }, dial);
  }

  /** Reads migration progress from the source. */
  async progress(sourceIP: string, qmpPort: number): Promise<MigrateProgress> {
    const r = await withQmp(addr(sourceIP, qmpPort), (q) => queryMigrate(q), dial);
    const info: MigrationInfo = { status: r.status ?? "" };
    if (r["total-time"] !== undefined) info.totalTimeMs = r["total-time"];
    if (r["setup-time"] !== undefined) info.setupTimeMs = r["setup-time"];
    if (r.downtime !== undefined) info.downtimeMs = r.downtime;
    if (r.ram) {
      info.ram = { transferred: r.ram.transferred, remaining: r.ram.remaining, total: r.ram.total };
    }
    if (r.compression) {
      info.compression = {
        ...(r.compression["compressed-size"] !== undefined
          ? { compressedSize: r.compression["compressed-size"] }
          : {}),
        ...(r.compression["compression-rate"] !== undefined
          ? { compressionRate: Math.round(r.compression["compression-rate"]) }
          : {}),
      };
    }
    return { status: r.status ?? "", info };
  }

  /** Cancels the migration on the source. */
  async cancel(sourceIP: string, qmpPort: number): Promise<void> {
    await withQmp(addr(sourceIP, qmpPort), (q) => migrateCancel(q), dial);
  }

  /** Stops a QEMU. */
  async quit(ip: string, qmpPort: number): Promise<void> {
    await withQmp(addr(ip, qmpPort), (q) => quit(q), dial);
  }
}
