/**
 * The runner's network-monitoring counters (reference §6.5, `enableNetworkMonitoring`): bytes of
 * the filter table's INPUT (ingress) and OUTPUT (egress) TCP rules whose source and destination
 * are both public (neither loopback, private, link-local nor unspecified-as-host), parsed from
 * `iptables -L <chain> -v -x -n`, and the Prometheus text that exposes them. Pure: no I/O.
 * @module
 */

/** One parsed iptables rule line. */
export interface IptablesRule {
  /** Byte counter. */
  readonly bytes: number;
  /** Protocol column (`tcp`, `6`, `all`, ...). */
  readonly prot: string;
  /** Source CIDR. */
  readonly source: string;
  /** Destination CIDR. */
  readonly destination: string;
}

/** Parses `iptables -L <chain> -v -x -n` output; skips the two header lines and odd lines. */
export function parseIptablesListing(text: string): IptablesRule[] {
  const out: IptablesRule[] = [];
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    // pkts bytes target prot opt in out source destination [extra...]
    if (f.length < 8 || !/^\d+$/.test(f[0]!) || !/^\d+$/.test(f[1]!)) continue;
    // The target column may be empty (a counting rule): then `prot` shifts left.
    const hasTarget = !/^(all|tcp|udp|icmp|\d+)$/.test(f[2]!) || f.length >= 9;
    const o = hasTarget ? 0 : -1;
    const prot = f[3 + o]!;
    const source = f[7 + o]!;
    const destination = f[8 + o] ?? "";
    out.push({ bytes: Number(f[1]), prot, source, destination });
  }
  return out;
}

function ipv4(cidr: string): number[] | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)(?:\/(\d+))?$/.exec(cidr);
  if (!m) return undefined;
  return [
    Number(m[1]),
    Number(m[2]),
    Number(m[3]),
    Number(m[4]),
    m[5] === undefined ? 32 : Number(m[5]),
  ];
}

/** True for a public IPv4 host or network (not any/loopback/private/link-local). */
export function isPublicIpv4(cidr: string): boolean {
  const p = ipv4(cidr);
  if (!p) return false;
  const [a, b, , , len] = p as [number, number, number, number, number];
  if (len === 0) return false; // 0.0.0.0/0 matches private addresses too
  if (a === 0 || a === 127 || a === 10) return false;
  if (a === 172 && b >= 16 && b <= 31) return false;
  if (a === 192 && b === 168) return false;
  if (a === 169 && b === 254) return false;
  return true;
}

/** Sum of bytes of TCP rules between public addresses. */
export function publicTcpBytes(rules: readonly IptablesRule[]): number {
  return rules
    .filter((r) =>
      (r.prot === "tcp" || r.prot === "6") && isPublicIpv4(r.source) &&
      isPublicIpv4(r.destination)
    )
    .reduce((n, r) => n + r.bytes, 0);
}

/** Counters exposed on `/metrics`. */
export interface NetCounters {
  /** Ingress bytes (INPUT chain). */
  readonly ingressBytes: number;
  /** Egress bytes (OUTPUT chain). */
  readonly egressBytes: number;
  /** Failed reads of the counters. */
  readonly fetchErrors: number;
}

/** Prometheus text exposition of the counters. */
export function netMetricsText(c: NetCounters): string {
  const metric = (name: string, help: string, v: number) =>
    `# HELP ${name} ${help}\n# TYPE ${name} counter\n${name} ${v}\n`;
  return metric(
    "runner_vm_ingress_bytes_total",
    "Number of bytes received by the VM from the open internet",
    c.ingressBytes,
  ) +
    metric(
      "runner_vm_egress_bytes_total",
      "Number of bytes sent by the VM to the open internet",
      c.egressBytes,
    ) +
    metric(
      "runner_vm_network_fetch_errors_total",
      "Number of errors while fetching network counters",
      c.fetchErrors,
    );
}
