/**
 * neonvm-vxlan-controller (reference §8.2): keeps the overlay bridge and VXLAN device on this node,
 * floods broadcasts to every other node's InternalIP, and exempts overlay traffic from NAT.
 * Composition root: flags and env -> config -> logger, Kubernetes client -> refresh loop.
 * @module
 */
import { parseArgs } from "node:util";
import { z } from "zod";
import { systemClock } from "../lib/clock.ts";
import { errorChainMessage } from "../lib/errors.ts";
import { createLogger } from "../lib/log.ts";
import { KubeClient } from "../lib/k8s/client.ts";
import { NodeSchema } from "../lib/k8s/core_types.ts";
import { loadClusterAccess } from "../lib/k8s/kubeconfig.ts";
import { NODES } from "../lib/k8s/meta.ts";
import { DEFAULT_OVERLAY, isIpv4, planDelete, planRefresh } from "./core/plan.ts";
import { apply, hostExec, observe } from "./io/host.ts";

const ConfigSchema = z.object({
  delete: z.boolean(),
  nodeIp: z.string().refine(isIpv4, "MY_NODE_IP must be an IPv4 address"),
  refreshMs: z.number().int().positive(),
  kubeconfig: z.string().optional(),
});

const log = createLogger("vxlan");
// Accept both the reference's single-dash flags and double-dash ones.
const args = Deno.args.map((a) => /^-[a-z]/.test(a) ? `-${a}` : a);
const { values } = parseArgs({
  args,
  options: {
    delete: { type: "boolean", default: false },
    "refresh-seconds": { type: "string", default: "30" },
    kubeconfig: { type: "string" },
  },
});
const parsed = ConfigSchema.safeParse({
  delete: values.delete,
  nodeIp: Deno.env.get("MY_NODE_IP") ?? "",
  refreshMs: Number(values["refresh-seconds"]) * 1000,
  kubeconfig: values.kubeconfig,
});
if (!parsed.success) {
  log.error("invalid configuration", {
    issues: parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "),
  });
  Deno.exit(2);
}
const cfg = Object.freeze(parsed.data);

if (cfg.delete) {
  await apply(hostExec, planDelete(DEFAULT_OVERLAY, await observe(hostExec, DEFAULT_OVERLAY)));
  log.info("overlay removed");
  Deno.exit(0);
}

const access = await loadClusterAccess(cfg.kubeconfig ? { kubeconfigPath: cfg.kubeconfig } : {});
using kube = KubeClient.fromAccess(access, { userAgent: "neonvm-vxlan-controller" });
const nodes = kube.resource(NODES, NodeSchema);
const stop = new AbortController();
Deno.addSignalListener("SIGTERM", () => stop.abort());
Deno.addSignalListener("SIGINT", () => stop.abort());

while (!stop.signal.aborted) {
  try {
    const { items } = await nodes.list({ signal: stop.signal });
    const ips = items.flatMap((n) =>
      (n.status?.addresses ?? []).filter((a) => a.type === "InternalIP").map((a) => a.address)
    );
    const commands = planRefresh(
      DEFAULT_OVERLAY,
      cfg.nodeIp,
      ips,
      await observe(hostExec, DEFAULT_OVERLAY),
    );
    await apply(hostExec, commands);
    if (commands.length > 0) {
      log.info("overlay updated", { commands: commands.length, nodes: ips.length });
    }
  } catch (error) {
    if (stop.signal.aborted) break;
    // One failed round is retried on the next tick; the error says which command or call failed.
    log.error("refresh failed", { error: errorChainMessage(error) });
  }
  await systemClock.sleep(cfg.refreshMs, stop.signal).catch((e: unknown) => {
    // Only the stop signal ends a sleep early.
    if (!stop.signal.aborted) throw e;
  });
}
log.info("stopped");
