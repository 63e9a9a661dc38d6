/**
 * Executes the network plan inside the runner pod (reference §6.4): makes sure /dev/net/tun
 * exists, creates the bridge and tap, installs the iptables rules, appends the `guest-vm` alias to
 * /etc/hosts and starts dnsmasq. Must run only in the pod's own network namespace.
 * @module
 */
import type { Logger } from "../../lib/log.ts";
import type { NetworkPlan } from "../core/network.ts";
import { netMetricsText, parseIptablesListing, publicTcpBytes } from "../core/net_metrics.ts";
import { runCommand } from "./exec.ts";

/** The running network helpers; dispose to stop dnsmasq. */
export interface NetworkHandle extends AsyncDisposable {
  /** dnsmasq's process. */
  readonly dnsmasq: Deno.ChildProcess;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function ensureTun(logger: Logger): Promise<void> {
  try {
    await Deno.stat("/dev/net/tun");
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    await Deno.mkdir("/dev/net", { recursive: true });
    await runCommand(["mknod", "/dev/net/tun", "c", "10", "200"], { logger });
    await Deno.chmod("/dev/net/tun", 0o666);
  }
}

/** Applies the plan; returns a handle owning dnsmasq. */
export async function applyNetworkPlan(
  plan: NetworkPlan,
  logger: Logger,
  options: { hostsFile?: string; dnsmasqBin?: string } = {},
): Promise<NetworkHandle> {
  await ensureTun(logger);
  for (const cmd of plan.commands) await runCommand(cmd, { logger });
  const hosts = options.hostsFile ?? "/etc/hosts";
  await Deno.writeTextFile(hosts, plan.hostsLine + "\n", { append: true });
  const argv = [
    options.dnsmasqBin ?? "dnsmasq",
    "--keep-in-foreground",
    "--log-facility=-",
    ...plan.dnsmasqArgs,
  ];
  // dnsmasq must not outlive the runner (it would keep the pod's log pipe open).
  if (await exists("/usr/bin/setpriv")) argv.unshift("setpriv", "--pdeathsig", "KILL", "--");
  const [bin, ...args] = argv;
  const dnsmasq = new Deno.Command(bin!, {
    args,
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  logger.info("network ready", { nics: plan.nics, dnsmasqPid: dnsmasq.pid });
  return {
    dnsmasq,
    [Symbol.asyncDispose]: async () => {
      try {
        dnsmasq.kill("SIGTERM");
      } catch (_exited) {
        // Already gone.
      }
      await dnsmasq.status;
    },
  };
}

/**
 * `/metrics` for `enableNetworkMonitoring`: reads the filter table's INPUT and OUTPUT byte
 * counters on every scrape; a failed read counts in `runner_vm_network_fetch_errors_total` and
 * keeps the last values.
 */
export function networkMetrics(logger: Logger): () => Promise<string> {
  let ingressBytes = 0;
  let egressBytes = 0;
  let fetchErrors = 0;
  return async () => {
    try {
      const [input, output] = await Promise.all(
        ["INPUT", "OUTPUT"].map((chain) =>
          runCommand(["iptables", "-t", "filter", "-L", chain, "-v", "-x", "-n"])
        ),
      );
      ingressBytes = publicTcpBytes(parseIptablesListing(input!.stdout));
      egressBytes = publicTcpBytes(parseIptablesListing(output!.stdout));
    } catch (error) {
      fetchErrors++;
      logger.warn("cannot read network counters", { error });
    }
    return netMetricsText({ ingressBytes, egressBytes, fetchErrors });
  };
}
