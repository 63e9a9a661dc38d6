/**
 * `deno task status [--watch] [--interval-seconds N] [--kubeconfig F]`: the live table of every
 * VirtualMachine (phase, CPU and memory in use, in the guest, approved) and every node's
 * reservation, for whatever cluster the kubeconfig points at.
 * @module
 */
import { parseArgs } from "node:util";
import { z } from "zod";
import { VirtualMachineSchema } from "../../src/api/virtualmachine.ts";
import { systemClock } from "../../src/lib/clock.ts";
import { KubeClient } from "../../src/lib/k8s/client.ts";
import { NodeSchema, PodSchema } from "../../src/lib/k8s/core_types.ts";
import { loadClusterAccess } from "../../src/lib/k8s/kubeconfig.ts";
import { NODES, PODS, VIRTUAL_MACHINES } from "../../src/lib/k8s/meta.ts";
import { createLogger } from "../../src/lib/log.ts";
import { renderStatus } from "./render.ts";
import { nodeRows, vmRows } from "./rows.ts";

/** Reads the cluster once and renders the table. */
export async function readStatus(kube: KubeClient, signal?: AbortSignal): Promise<string> {
  const opts = signal ? { signal } : {};
  const [vms, pods, nodes] = await Promise.all([
    kube.resource(VIRTUAL_MACHINES, VirtualMachineSchema).list(opts),
    kube.resource(PODS, PodSchema).list(opts),
    kube.resource(NODES, NodeSchema).list(opts),
  ]);
  return renderStatus(vmRows(vms.items), nodeRows(nodes.items, pods.items, vms.items));
}

const FlagsSchema = z.object({
  watch: z.boolean(),
  intervalMs: z.number().int().min(200).max(3_600_000),
  kubeconfig: z.string().optional(),
});

if (import.meta.main) {
  const log = createLogger("status");
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      watch: { type: "boolean", short: "w", default: false },
      "interval-seconds": { type: "string", default: "2" },
      kubeconfig: { type: "string" },
    },
  });
  const flags = FlagsSchema.safeParse({
    watch: values.watch,
    intervalMs: Math.round(Number(values["interval-seconds"]) * 1000),
    kubeconfig: values.kubeconfig ?? Deno.env.get("KUBECONFIG"),
  });
  if (!flags.success) {
    log.error("invalid flags", {
      issues: flags.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "),
    });
    Deno.exit(2);
  }
  const access = await loadClusterAccess(
    flags.data.kubeconfig ? { kubeconfigPath: flags.data.kubeconfig } : {},
  );
  using kube = KubeClient.fromAccess(access, { userAgent: "neonvm-status" });
  const out = new TextEncoder();
  do {
    const table = await readStatus(kube);
    const clear = flags.data.watch ? "\x1b[2J\x1b[H" : "";
    await Deno.stdout.write(out.encode(`${clear}${table}\n`));
    if (flags.data.watch) await systemClock.sleep(flags.data.intervalMs);
  } while (flags.data.watch);
}
