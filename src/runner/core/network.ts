/**
 * Networking inside the runner pod (reference §6.4) as a plan: the commands that create the
 * bridge and multiqueue tap, the dnsmasq arguments that hand the guest its fixed address, the
 * iptables rules that NAT the guest out and DNAT its ports in, the /etc/hosts line, and the NICs
 * QEMU gets. Pure: builds data; io/network.ts runs it.
 * @module
 */
import type { Port } from "../../api/virtualmachine.ts";

/** The default guest network: a /30 with the pod side at .253 and the guest at .254. */
export const DEFAULT_NET = {
  bridge: "br-def",
  tap: "tap-def",
  bridgeIp: "169.254.254.253",
  guestIp: "169.254.254.254",
  prefixLen: 30,
  mask: "255.255.255.252",
  hostAlias: "guest-vm",
} as const;

/** The overlay (extra) network device names. */
export const OVERLAY_NET = { bridge: "br-overlay", tap: "tap-overlay" } as const;

/** Number of tap queues (reference: 4, with 10 MSI-X vectors). */
export const TAP_QUEUES = 4;

/** A NIC QEMU attaches to a tap. */
export interface QemuNic {
  /** netdev id: `default` or `overlay`. */
  readonly id: string;
  /** Tap interface name. */
  readonly ifname: string;
  /** Guest MAC address. */
  readonly mac: string;
}

/** The network plan. */
export interface NetworkPlan {
  /** Commands (argv) run in order before QEMU starts. */
  readonly commands: readonly (readonly string[])[];
  /** dnsmasq argv (without the binary). */
  readonly dnsmasqArgs: readonly string[];
  /** Line appended to /etc/hosts. */
  readonly hostsLine: string;
  /** NICs for QEMU. */
  readonly nics: readonly QemuNic[];
}

/** Inputs of {@linkcode planNetwork}. */
export interface NetworkPlanInput {
  /** Guest ports to DNAT from the pod to the guest. */
  readonly ports: readonly Port[];
  /** MAC of the default NIC. */
  readonly defaultMac: string;
  /** Pod interface facing the cluster (`eth0`). */
  readonly podInterface: string;
  /** Nameservers from the pod's resolv.conf (the first is offered to the guest). */
  readonly nameservers: readonly string[];
  /** Search domains from the pod's resolv.conf. */
  readonly searchDomains: readonly string[];
  /** The Multus interface to bridge into the guest as eth1, when the extra network is on. */
  readonly overlay?: { readonly podInterface: string; readonly mac: string };
}

/** Formats 6 bytes as a MAC address. */
export function formatMac(bytes: readonly number[]): string {
  return bytes.map((b) => (b & 0xff).toString(16).padStart(2, "0")).join(":");
}

/**
 * A random locally administered unicast MAC from 5 random bytes (`02:xx:xx:xx:xx:xx`); the
 * bytes come from the caller so this stays pure.
 */
export function localMac(random5: readonly number[]): string {
  return formatMac([0x02, ...random5.slice(0, 5)]);
}

/** Builds the network plan. */
export function planNetwork(input: NetworkPlanInput): NetworkPlan {
  const n = DEFAULT_NET;
  const cmds: string[][] = [
    ["ip", "link", "add", "name", n.bridge, "type", "bridge"],
    ["ip", "addr", "add", `${n.bridgeIp}/${n.prefixLen}`, "dev", n.bridge],
    ["ip", "link", "set", "dev", n.bridge, "up"],
    ["ip", "tuntap", "add", "dev", n.tap, "mode", "tap", "multi_queue"],
    ["ip", "link", "set", "dev", n.tap, "master", n.bridge],
    ["ip", "link", "set", "dev", n.tap, "up"],
    ["iptables", "-t", "nat", "-A", "POSTROUTING", "-o", input.podInterface, "-j", "MASQUERADE"],
  ];
  for (const p of input.ports) {
    const proto = p.protocol.toLowerCase();
    const port = String(p.port);
    const to = `${n.guestIp}:${port}`;
    cmds.push(
      [
        "iptables",
        "-t",
        "nat",
        "-A",
        "PREROUTING",
        "-i",
        input.podInterface,
        "-p",
        proto,
        "--dport",
        port,
        "-j",
        "DNAT",
        "--to",
        to,
      ],
      [
        "iptables",
        "-t",
        "nat",
        "-A",
        "OUTPUT",
        "-m",
        "addrtype",
        "--src-type",
        "LOCAL",
        "--dst-type",
        "LOCAL",
        "-p",
        proto,
        "--dport",
        port,
        "-j",
        "DNAT",
        "--to-destination",
        to,
      ],
      [
        "iptables",
        "-A",
        "OUTPUT",
        "-s",
        "127.0.0.1",
        "-d",
        n.guestIp,
        "-p",
        proto,
        "--dport",
        port,
        "-j",
        "ACCEPT",
      ],
    );
  }
  cmds.push([
    "iptables",
    "-t",
    "nat",
    "-A",
    "POSTROUTING",
    "-m",
    "addrtype",
    "--src-type",
    "LOCAL",
    "--dst-type",
    "UNICAST",
    "-j",
    "MASQUERADE",
  ]);
  const nics: QemuNic[] = [{ id: "default", ifname: n.tap, mac: input.defaultMac }];
  if (input.overlay) {
    const o = OVERLAY_NET;
    cmds.push(
      ["ip", "link", "add", "name", o.bridge, "type", "bridge"],
      ["ip", "link", "set", "dev", o.bridge, "type", "bridge", "stp_state", "0"],
      ["ip", "link", "set", "dev", o.bridge, "up"],
      ["ip", "tuntap", "add", "dev", o.tap, "mode", "tap", "multi_queue"],
      ["ip", "link", "set", "dev", o.tap, "master", o.bridge],
      ["ip", "link", "set", "dev", o.tap, "type", "bridge_slave", "learning", "off"],
      ["ip", "link", "set", "dev", o.tap, "up"],
      ["ip", "-4", "addr", "flush", "dev", input.overlay.podInterface],
      ["ip", "link", "set", "dev", input.overlay.podInterface, "master", o.bridge],
      ["ip", "link", "set", "dev", input.overlay.podInterface, "up"],
    );
    nics.push({ id: "overlay", ifname: o.tap, mac: input.overlay.mac });
  }
  const dnsmasqArgs = [
    "--port=0",
    "--no-resolv",
    "--bind-interfaces",
    "--dhcp-authoritative",
    // Why (not in the reference): keep leases in memory; a lease file left by an earlier runner
    // on the same file system would block the guest's fixed address.
    "--leasefile-ro",
    `--interface=${n.bridge}`,
    `--dhcp-range=${n.guestIp},static,${n.mask}`,
    `--dhcp-host=${input.defaultMac},${n.guestIp},infinite`,
    `--dhcp-option=option:router,${n.bridgeIp}`,
    ...(input.nameservers[0] === undefined
      ? []
      : [`--dhcp-option=option:dns-server,${input.nameservers[0]}`]),
    ...(input.searchDomains.length === 0
      ? []
      : [`--dhcp-option=option:domain-search,${input.searchDomains.join(",")}`]),
    `--shared-network=${n.bridge},${n.guestIp}`,
  ];
  return {
    commands: cmds,
    dnsmasqArgs,
    hostsLine: `${n.guestIp}\t${n.hostAlias}`,
    nics,
  };
}

/** Parses resolv.conf text into nameservers and search domains. */
export function parseResolvConf(text: string): { nameservers: string[]; searchDomains: string[] } {
  const nameservers: string[] = [];
  let searchDomains: string[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.replace(/[#;].*$/, "").trim();
    const [key, ...rest] = line.split(/\s+/);
    if (key === "nameserver" && rest[0] !== undefined) nameservers.push(rest[0]);
    if (key === "search") searchDomains = rest.filter((s) => s !== "");
  }
  return { nameservers, searchDomains };
}
