/**
 * The cluster's private network on this machine: a host bridge (10.213.0.1/24), one network
 * namespace per node joined to it by a veth pair, host routes to each node's pod CIDR, forwarding
 * confined to the bridge by an iptables chain of our own, and in each node namespace a DNAT rule
 * standing in for kube-proxy for the one Service pods need (`default/kubernetes`). Every change is
 * idempotent and undone by `teardown*`. Must not route anything off the bridge.
 * @module
 */
import { exists, run } from "./exec.ts";
import {
  APISERVER_PORT,
  BRIDGE,
  BRIDGE_IP,
  KUBERNETES_SERVICE_IP,
  type NodeLayout,
} from "./layout.ts";

/** Our own FORWARD sub-chain in the host's filter table. */
export const FORWARD_CHAIN = "NEONVM-TS-FWD";

async function linkExists(name: string, netns?: string): Promise<boolean> {
  const cmd = netns ? ["ip", "-n", netns, "link", "show", name] : ["ip", "link", "show", name];
  return (await run(cmd, { step: "net.probe", allowFail: true })).code === 0;
}

async function ipt(args: string[], step: string, logFile: string, netns?: string): Promise<void> {
  const pre = netns ? ["ip", "netns", "exec", netns] : [];
  // -C first: add a rule only when it is not there yet.
  const check = args.map((a) => (a === "-A" || a === "-I" ? "-C" : a));
  const has = await run([...pre, "iptables", "-w", ...check], { step, allowFail: true });
  if (has.code !== 0) await run([...pre, "iptables", "-w", ...args], { step, logFile });
}

/** Brings up the host bridge, forwarding and our FORWARD chain. */
export async function setupHostNetwork(logFile: string): Promise<void> {
  const step = "net.host";
  if (!(await linkExists(BRIDGE))) {
    await run(["ip", "link", "add", BRIDGE, "type", "bridge"], { step, logFile });
  }
  const addrs = await run(["ip", "-4", "-o", "addr", "show", "dev", BRIDGE], { step });
  if (!addrs.stdout.includes(`${BRIDGE_IP}/24`)) {
    await run(["ip", "addr", "add", `${BRIDGE_IP}/24`, "dev", BRIDGE], { step, logFile });
  }
  await run(["ip", "link", "set", BRIDGE, "up"], { step, logFile });
  await run(["sysctl", "-qw", "net.ipv4.ip_forward=1"], { step, logFile });
  const chain = await run(["iptables", "-w", "-S", FORWARD_CHAIN], { step, allowFail: true });
  if (chain.code !== 0) await run(["iptables", "-w", "-N", FORWARD_CHAIN], { step, logFile });
  await ipt(["-A", FORWARD_CHAIN, "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT"], step, logFile);
  await ipt(["-A", FORWARD_CHAIN, "-i", BRIDGE, "-j", "DROP"], step, logFile);
  await ipt(["-A", FORWARD_CHAIN, "-o", BRIDGE, "-j", "DROP"], step, logFile);
  await ipt(["-I", "FORWARD", "-j", FORWARD_CHAIN], step, logFile);
}

/** Creates node `n`'s network namespace, veth, addresses, routes and the Service DNAT. */
export async function setupNodeNetwork(n: NodeLayout, logFile: string): Promise<void> {
  const step = `${n.name}.network`;
  if (!(await exists(`/run/netns/${n.netns}`))) {
    await run(["ip", "netns", "add", n.netns], { step, logFile });
  }
  if (!(await linkExists(n.vethHost))) {
    await run([
      "ip",
      "link",
      "add",
      n.vethHost,
      "type",
      "veth",
      "peer",
      "name",
      "eth0",
      "netns",
      n.netns,
    ], { step, logFile });
  }
  await run(["ip", "link", "set", n.vethHost, "master", BRIDGE, "up"], { step, logFile });
  const inNs = (args: string[]) => run(["ip", "-n", n.netns, ...args], { step, logFile });
  const addrs = await run(["ip", "-n", n.netns, "-4", "-o", "addr", "show", "dev", "eth0"], {
    step,
  });
  if (!addrs.stdout.includes(`${n.ip}/24`)) {
    await inNs(["addr", "add", `${n.ip}/24`, "dev", "eth0"]);
  }
  await inNs(["link", "set", "lo", "up"]);
  await inNs(["link", "set", "eth0", "up"]);
  await inNs(["route", "replace", "default", "via", BRIDGE_IP]);
  await run(["ip", "route", "replace", n.podCidr, "via", n.ip, "dev", BRIDGE], { step, logFile });
  await run(["ip", "netns", "exec", n.netns, "sysctl", "-qw", "net.ipv4.ip_forward=1"], {
    step,
    logFile,
  });
  // Stand-in for kube-proxy, for the one Service everything needs: the kubernetes ClusterIP,
  // from pods (PREROUTING) and host-network pods and the node itself (OUTPUT).
  for (const chain of ["PREROUTING", "OUTPUT"]) {
    await ipt(
      [
        "-t",
        "nat",
        "-A",
        chain,
        "-d",
        `${KUBERNETES_SERVICE_IP}/32`,
        "-p",
        "tcp",
        "--dport",
        "443",
        "-j",
        "DNAT",
        "--to-destination",
        `${BRIDGE_IP}:${APISERVER_PORT}`,
      ],
      step,
      logFile,
      n.netns,
    );
  }
}

/** Removes node `n`'s namespace (and with it the veth pair) and its host route. */
export async function teardownNodeNetwork(n: NodeLayout, logFile: string): Promise<void> {
  const step = `${n.name}.network-down`;
  await run(["ip", "route", "del", n.podCidr], { step, logFile, allowFail: true });
  if (await linkExists(n.vethHost)) {
    await run(["ip", "link", "del", n.vethHost], { step, logFile, allowFail: true });
  }
  if (await exists(`/run/netns/${n.netns}`)) {
    await run(["ip", "netns", "del", n.netns], { step, logFile });
  }
}

/** Removes the bridge and our iptables chain; restores ip_forward to `ipForward`. */
export async function teardownHostNetwork(logFile: string, ipForward: string): Promise<void> {
  const step = "net.host-down";
  for (;;) {
    const r = await run(["iptables", "-w", "-D", "FORWARD", "-j", FORWARD_CHAIN], {
      step,
      allowFail: true,
    });
    if (r.code !== 0) break;
  }
  if ((await run(["iptables", "-w", "-S", FORWARD_CHAIN], { step, allowFail: true })).code === 0) {
    await run(["iptables", "-w", "-F", FORWARD_CHAIN], { step, logFile });
    await run(["iptables", "-w", "-X", FORWARD_CHAIN], { step, logFile });
  }
  if (await linkExists(BRIDGE)) await run(["ip", "link", "del", BRIDGE], { step, logFile });
  await run(["sysctl", "-qw", `net.ipv4.ip_forward=${ipForward}`], { step, logFile });
}

/** Names of node network namespaces that exist (ours are `nvts-node-<i>`). */
export async function existingNodeNetns(): Promise<string[]> {
  if (!(await exists("/run/netns"))) return [];
  const out: string[] = [];
  for await (const e of Deno.readDir("/run/netns")) {
    if (/^nvts-node-\d+$/.test(e.name)) out.push(e.name);
  }
  return out.sort();
}
