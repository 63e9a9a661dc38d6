import assert from "node:assert/strict";
import {
  DEFAULT_OVERLAY,
  type ObservedState,
  peerAddresses,
  planDelete,
  planRefresh,
} from "./plan.ts";

const empty: ObservedState = {
  links: new Set(),
  fdbDestinations: new Set(),
  natChainExists: false,
  natChainRules: new Set(),
  postroutingJump: false,
};

const line = (c: { cmd: string; args: readonly string[] }) => [c.cmd, ...c.args].join(" ");

Deno.test("a fresh node gets links, one flood entry per other node, and the NAT chain", () => {
  const cmds = planRefresh(DEFAULT_OVERLAY, "10.0.0.1", ["10.0.0.1", "10.0.0.2", "fe80::1"], empty)
    .map(line);
  assert.deepEqual(cmds, [
    "ip link add neon-br0 type bridge",
    "ip link set neon-br0 up",
    "ip link add neon-vxlan0 type vxlan id 100 local 10.0.0.1 dstport 4789 learning",
    "ip link set neon-vxlan0 master neon-br0",
    "ip link set neon-vxlan0 up",
    "bridge fdb append 00:00:00:00:00:00 dev neon-vxlan0 dst 10.0.0.2 permanent",
    "iptables -t nat -N NEON-EXTRANET",
    "iptables -t nat -A NEON-EXTRANET -s 10.100.0.0/16 -j ACCEPT",
    "iptables -t nat -A NEON-EXTRANET -d 10.100.0.0/16 -j ACCEPT",
    "iptables -t nat -I POSTROUTING -d 10.100.0.0/16 -j NEON-EXTRANET",
  ]);
});

Deno.test("a converged node needs nothing; a departed peer's entry is removed", () => {
  const converged: ObservedState = {
    links: new Set(["neon-br0", "neon-vxlan0"]),
    fdbDestinations: new Set(["10.0.0.2", "10.0.0.3"]),
    natChainExists: true,
    natChainRules: new Set(["-s 10.100.0.0/16 -j ACCEPT", "-d 10.100.0.0/16 -j ACCEPT"]),
    postroutingJump: true,
  };
  assert.deepEqual(
    planRefresh(DEFAULT_OVERLAY, "10.0.0.1", ["10.0.0.1", "10.0.0.2", "10.0.0.3"], converged),
    [],
  );
  assert.deepEqual(
    planRefresh(DEFAULT_OVERLAY, "10.0.0.1", ["10.0.0.1", "10.0.0.2"], converged).map(line),
    ["bridge fdb del 00:00:00:00:00:00 dev neon-vxlan0 dst 10.0.0.3"],
  );
  assert.equal(planDelete(DEFAULT_OVERLAY, converged).length, 5);
  assert.deepEqual(planDelete(DEFAULT_OVERLAY, empty), []);
});

Deno.test("peers exclude our own address, duplicates and non-IPv4 addresses", () => {
  assert.deepEqual(
    peerAddresses(["b", "10.0.0.9", "10.0.0.9", "10.0.0.1", "300.1.1.1"], "10.0.0.1"),
    [
      "10.0.0.9",
    ],
  );
});
