/**
 * Tests of the runner network plan.
 * @module
 */
import assert from "node:assert/strict";
import { localMac, parseResolvConf, planNetwork } from "./network.ts";

Deno.test("network plan: bridge, tap, NAT, per-port DNAT, dnsmasq", () => {
  const p = planNetwork({
    ports: [{ port: 5432, protocol: "TCP" }, { name: "dns", port: 53, protocol: "UDP" }],
    defaultMac: "02:11:22:33:44:55",
    podInterface: "eth0",
    nameservers: ["10.96.0.10", "8.8.8.8"],
    searchDomains: ["default.svc.cluster.local", "svc.cluster.local"],
  });
  const lines = p.commands.map((c) => c.join(" "));
  assert.equal(lines[0], "ip link add name br-def type bridge");
  assert.ok(lines.includes("ip tuntap add dev tap-def mode tap multi_queue"));
  assert.ok(lines.includes(
    "iptables -t nat -A PREROUTING -i eth0 -p tcp --dport 5432 -j DNAT --to 169.254.254.254:5432",
  ));
  assert.ok(lines.includes(
    "iptables -t nat -A PREROUTING -i eth0 -p udp --dport 53 -j DNAT --to 169.254.254.254:53",
  ));
  assert.ok(
    lines.includes(
      "iptables -A OUTPUT -s 127.0.0.1 -d 169.254.254.254 -p tcp --dport 5432 -j ACCEPT",
    ),
  );
  assert.equal(
    lines.at(-1),
    "iptables -t nat -A POSTROUTING -m addrtype --src-type LOCAL --dst-type UNICAST -j MASQUERADE",
  );
  assert.ok(p.dnsmasqArgs.includes("--dhcp-host=02:11:22:33:44:55,169.254.254.254,infinite"));
  assert.ok(p.dnsmasqArgs.includes("--dhcp-option=option:dns-server,10.96.0.10"));
  assert.ok(p.dnsmasqArgs.includes(
    "--dhcp-option=option:domain-search,default.svc.cluster.local,svc.cluster.local",
  ));
  assert.equal(p.hostsLine, "169.254.254.254\tguest-vm");
  assert.deepEqual(p.nics, [{ id: "default", ifname: "tap-def", mac: "02:11:22:33:44:55" }]);
});

Deno.test("overlay network adds a second bridge and NIC", () => {
  const p = planNetwork({
    ports: [],
    defaultMac: "02:00:00:00:00:01",
    podInterface: "eth0",
    nameservers: [],
    searchDomains: [],
    overlay: { podInterface: "net1", mac: "02:00:00:00:00:02" },
  });
  assert.equal(p.nics.length, 2);
  assert.ok(p.commands.some((c) => c.join(" ") === "ip link set dev net1 master br-overlay"));
  assert.ok(!p.dnsmasqArgs.some((a) => a.includes("dns-server")));
});

Deno.test("localMac is locally administered unicast; resolv.conf parsing", () => {
  assert.equal(localMac([0xab, 1, 2, 3, 255]), "02:ab:01:02:03:ff");
  assert.deepEqual(
    parseResolvConf(
      "# c\nsearch a.svc b.svc\nnameserver 10.96.0.10\nnameserver 1.1.1.1\noptions ndots:5\n",
    ),
    { nameservers: ["10.96.0.10", "1.1.1.1"], searchDomains: ["a.svc", "b.svc"] },
  );
});
