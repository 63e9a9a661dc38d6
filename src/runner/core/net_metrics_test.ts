/**
 * Tests of the network-monitoring counter parsing.
 * @module
 */
import assert from "node:assert/strict";
import {
  isPublicIpv4,
  netMetricsText,
  parseIptablesListing,
  publicTcpBytes,
} from "./net_metrics.ts";

const LISTING = `Chain INPUT (policy ACCEPT 10 packets, 600 bytes)
    pkts      bytes target     prot opt in     out     source               destination
      12     3000 ACCEPT     tcp  --  *      *       8.8.8.8              93.184.216.34
       5      700 ACCEPT     tcp  --  *      *       10.0.0.1             93.184.216.34
       3      400            tcp  --  *      *       1.1.1.1              93.184.216.34
       9     9000 ACCEPT     udp  --  *      *       8.8.8.8              93.184.216.34
       1      100 ACCEPT     all  --  *      *       0.0.0.0/0            0.0.0.0/0
`;

Deno.test("sums TCP rule bytes between public addresses only", () => {
  const rules = parseIptablesListing(LISTING);
  assert.equal(rules.length, 5);
  assert.deepEqual(rules[2], {
    bytes: 400,
    prot: "tcp",
    source: "1.1.1.1",
    destination: "93.184.216.34",
  });
  assert.equal(publicTcpBytes(rules), 3400);
  assert.equal(publicTcpBytes(parseIptablesListing("garbage\n\n")), 0);
});

Deno.test("public address classification", () => {
  for (
    const a of [
      "127.0.0.1",
      "10.1.2.3",
      "172.16.0.1",
      "172.31.255.1",
      "192.168.1.1",
      "169.254.254.254",
      "0.0.0.0/0",
      "x",
    ]
  ) {
    assert.equal(isPublicIpv4(a), false, a);
  }
  for (const a of ["8.8.8.8", "172.32.0.1", "93.184.216.0/24"]) {
    assert.equal(isPublicIpv4(a), true, a);
  }
});

Deno.test("Prometheus text", () => {
  const t = netMetricsText({ ingressBytes: 5, egressBytes: 7, fetchErrors: 1 });
  assert.match(
    t,
    /^# HELP runner_vm_ingress_bytes_total .*\n# TYPE runner_vm_ingress_bytes_total counter\nrunner_vm_ingress_bytes_total 5\n/,
  );
  assert.match(t, /\nrunner_vm_egress_bytes_total 7\n/);
  assert.match(t, /\nrunner_vm_network_fetch_errors_total 1\n$/);
});
