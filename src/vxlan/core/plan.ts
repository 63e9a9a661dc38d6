/**
 * neonvm-vxlan-controller planning (reference §8.2): which links, FDB entries and NAT rules a node
 * should have, and the commands that take the current state there. Pure: no I/O, no clock.
 * @module
 */

/** Names and numbers of the overlay; the defaults are the reference's. */
export interface OverlayConfig {
  /** Bridge the runner pods' extra interfaces attach to. */
  readonly bridgeName: string;
  /** VXLAN device enslaved to the bridge. */
  readonly vxlanName: string;
  /** VXLAN network identifier. */
  readonly vni: number;
  /** VXLAN UDP port. */
  readonly port: number;
  /** CIDR of the extra network; traffic inside it is never masqueraded. */
  readonly extraNetCidr: string;
  /** NAT chain holding the overlay's accept rules. */
  readonly natChain: string;
}

/** The reference's overlay settings. */
export const DEFAULT_OVERLAY: OverlayConfig = {
  bridgeName: "neon-br0",
  vxlanName: "neon-vxlan0",
  vni: 100,
  port: 4789,
  extraNetCidr: "10.100.0.0/16",
  natChain: "NEON-EXTRANET",
};

const IPV4_RE = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

/** True when `s` is a dotted-quad IPv4 address. */
export function isIpv4(s: string): boolean {
  return IPV4_RE.test(s);
}

/** One command to run: program and arguments. */
export interface Command {
  /** Program name (`ip`, `bridge`, `iptables`). */
  readonly cmd: string;
  /** Arguments. */
  readonly args: readonly string[];
}

/** What the node has now, as read by io/. */
export interface ObservedState {
  /** Link names present. */
  readonly links: ReadonlySet<string>;
  /** Destination IPs of the all-zero-MAC FDB entries on the VXLAN device. */
  readonly fdbDestinations: ReadonlySet<string>;
  /** Whether the NAT chain exists. */
  readonly natChainExists: boolean;
  /** Rules (in `iptables -S` argument form without the `-A <chain>` prefix) in the NAT chain. */
  readonly natChainRules: ReadonlySet<string>;
  /** Whether POSTROUTING jumps to the chain for the extra network. */
  readonly postroutingJump: boolean;
}

/** Peer IPs to flood to: every other node's IPv4 InternalIP, sorted and deduplicated. */
export function peerAddresses(nodeIps: readonly string[], ownIp: string): string[] {
  return [...new Set(nodeIps.filter((ip) => isIpv4(ip) && ip !== ownIp))].sort();
}

/** Commands that create the bridge and VXLAN device when they are missing. */
export function planLinks(cfg: OverlayConfig, ownIp: string, obs: ObservedState): Command[] {
  const out: Command[] = [];
  if (!obs.links.has(cfg.bridgeName)) {
    out.push({ cmd: "ip", args: ["link", "add", cfg.bridgeName, "type", "bridge"] });
    out.push({ cmd: "ip", args: ["link", "set", cfg.bridgeName, "up"] });
  }
  if (!obs.links.has(cfg.vxlanName)) {
    out.push({
      cmd: "ip",
      args: [
        "link",
        "add",
        cfg.vxlanName,
        "type",
        "vxlan",
        "id",
        String(cfg.vni),
        "local",
        ownIp,
        "dstport",
        String(cfg.port),
        "learning",
      ],
    });
    out.push({ cmd: "ip", args: ["link", "set", cfg.vxlanName, "master", cfg.bridgeName] });
    out.push({ cmd: "ip", args: ["link", "set", cfg.vxlanName, "up"] });
  }
  return out;
}

/**
 * Commands that make the flood list equal the peers. Unlike the reference, which only appends,
 * entries of nodes that left the cluster are removed too, so traffic stops flooding to dead peers.
 */
export function planFdb(
  cfg: OverlayConfig,
  peers: readonly string[],
  obs: ObservedState,
): Command[] {
  const want = new Set(peers);
  const out: Command[] = [];
  for (const ip of peers) {
    if (!obs.fdbDestinations.has(ip)) {
      out.push({
        cmd: "bridge",
        args: ["fdb", "append", "00:00:00:00:00:00", "dev", cfg.vxlanName, "dst", ip, "permanent"],
      });
    }
  }
  for (const ip of [...obs.fdbDestinations].sort()) {
    if (!want.has(ip)) {
      out.push({
        cmd: "bridge",
        args: ["fdb", "del", "00:00:00:00:00:00", "dev", cfg.vxlanName, "dst", ip],
      });
    }
  }
  return out;
}

/** The rules the NAT chain must hold: overlay traffic is accepted, never masqueraded. */
export function natChainRules(cfg: OverlayConfig): string[] {
  return [`-s ${cfg.extraNetCidr} -j ACCEPT`, `-d ${cfg.extraNetCidr} -j ACCEPT`];
}

/** Commands that create the NAT chain, its rules and the POSTROUTING jump when missing. */
export function planNat(cfg: OverlayConfig, obs: ObservedState): Command[] {
  const out: Command[] = [];
  if (!obs.natChainExists) out.push({ cmd: "iptables", args: ["-t", "nat", "-N", cfg.natChain] });
  for (const rule of natChainRules(cfg)) {
    if (!obs.natChainRules.has(rule)) {
      out.push({ cmd: "iptables", args: ["-t", "nat", "-A", cfg.natChain, ...rule.split(" ")] });
    }
  }
  if (!obs.postroutingJump) {
    out.push({
      cmd: "iptables",
      args: ["-t", "nat", "-I", "POSTROUTING", "-d", cfg.extraNetCidr, "-j", cfg.natChain],
    });
  }
  return out;
}

/** Every command for one refresh round, in order: links, flood list, NAT. */
export function planRefresh(
  cfg: OverlayConfig,
  ownIp: string,
  nodeIps: readonly string[],
  obs: ObservedState,
): Command[] {
  return [
    ...planLinks(cfg, ownIp, obs),
    ...planFdb(cfg, peerAddresses(nodeIps, ownIp), obs),
    ...planNat(cfg, obs),
  ];
}

/** Commands for `-delete`: remove the links and the NAT chain that exist. */
export function planDelete(cfg: OverlayConfig, obs: ObservedState): Command[] {
  const out: Command[] = [];
  if (obs.links.has(cfg.vxlanName)) out.push({ cmd: "ip", args: ["link", "del", cfg.vxlanName] });
  if (obs.links.has(cfg.bridgeName)) out.push({ cmd: "ip", args: ["link", "del", cfg.bridgeName] });
  if (obs.postroutingJump) {
    out.push({
      cmd: "iptables",
      args: ["-t", "nat", "-D", "POSTROUTING", "-d", cfg.extraNetCidr, "-j", cfg.natChain],
    });
  }
  if (obs.natChainExists) {
    out.push({ cmd: "iptables", args: ["-t", "nat", "-F", cfg.natChain] });
    out.push({ cmd: "iptables", args: ["-t", "nat", "-X", cfg.natChain] });
  }
  return out;
}
