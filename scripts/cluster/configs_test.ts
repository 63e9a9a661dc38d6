/**
 * Tests for the rendered cluster configs and the layout: addresses per node, per-node isolation
 * of containerd/kubelet paths, and the settings this machine needs (cgroup v1, cgroupfs).
 * @module
 */
import assert from "node:assert/strict";
import { cniConfig, containerdConfig, kubeletCmd, kubeletConfig } from "./configs.ts";
import { nodeLayout, PAUSE_IMAGE } from "./layout.ts";
import { extFileText, subject } from "./pki.ts";

Deno.test("node layouts are distinct per index", () => {
  const a = nodeLayout("/c", 0);
  const b = nodeLayout("/c", 1);
  assert.equal(a.ip, "10.213.0.10");
  assert.equal(b.ip, "10.213.0.11");
  assert.equal(a.podCidr, "10.214.0.0/24");
  assert.equal(b.podGateway, "10.214.1.1");
  for (
    const k of [
      "ip",
      "podCidr",
      "netns",
      "vethHost",
      "dir",
      "runDir",
      "containerdSocket",
      "cgroupRoot",
    ] as const
  ) {
    assert.notEqual(a[k], b[k], k);
  }
  assert.ok(a.vethHost.length <= 15, "interface names are at most 15 bytes");
  assert.throws(() => nodeLayout("/c", 8), RangeError);
  assert.throws(() => nodeLayout("/c", -1), RangeError);
});

Deno.test("containerd config isolates the node and uses the local pause image", () => {
  const n = nodeLayout("/c", 1);
  const t = containerdConfig(n);
  assert.match(t, /root = "\/c\/nodes\/node-1\/containerd"/);
  assert.match(t, /address = "\/run\/neonvm-ts\/node-1\/containerd.sock"/);
  assert.match(t, /Root = "\/run\/neonvm-ts\/node-1\/runc"/);
  assert.match(t, /SystemdCgroup = false/);
  assert.match(t, /restrict_oom_score_adj = true/);
  assert.ok(t.includes(`sandbox_image = "${PAUSE_IMAGE}"`));
  assert.ok(!t.includes("node-0"));
});

Deno.test("CNI config gives the node its own subnet, IPAM dir and no masquerade", () => {
  const n = nodeLayout("/c", 2);
  const c = JSON.parse(cniConfig(n));
  const bridge = c.plugins[0];
  assert.equal(bridge.ipMasq, false);
  assert.deepEqual(bridge.ipam.ranges, [[{ subnet: "10.214.2.0/24", gateway: "10.214.2.1" }]]);
  assert.equal(bridge.ipam.dataDir, "/c/nodes/node-2/cni-ipam");
  assert.equal(c.name, "nvts-node-2");
});

Deno.test("kubelet config allows cgroup v1, uses cgroupfs and turns evictions and image GC off", () => {
  const n = nodeLayout("/c", 0);
  const k = JSON.parse(kubeletConfig(n, "/c/pki"));
  assert.equal(k.failCgroupV1, false);
  assert.equal(k.cgroupDriver, "cgroupfs");
  assert.equal(k.cgroupRoot, "/nvts-node-0");
  assert.deepEqual(k.evictionHard, {});
  assert.equal(k.imageGCHighThresholdPercent, 100);
  assert.equal(k.containerRuntimeEndpoint, "unix:///run/neonvm-ts/node-0/containerd.sock");
  assert.equal(k.podLogsDir, "/c/nodes/node-0/pod-logs");
  const cmd = kubeletCmd("/bin", n, "/k.json", "/k.kubeconfig");
  assert.ok(cmd.includes("--node-ip=10.213.0.10"));
  assert.ok(cmd.includes("--root-dir=/c/nodes/node-0/kubelet"));
});

Deno.test("certificate extension text and subject", () => {
  const spec = {
    name: "x",
    cn: "system:node:node-0",
    orgs: ["system:nodes"],
    usage: "server" as const,
    dns: ["node-0"],
    ips: ["10.213.0.10"],
  };
  assert.equal(subject(spec), "/O=system:nodes/CN=system:node:node-0");
  const ext = extFileText(spec);
  assert.match(ext, /extendedKeyUsage=serverAuth\n/);
  assert.match(ext, /subjectAltName=DNS:node-0,IP:10.213.0.10/);
  assert.ok(
    !extFileText({ ...spec, usage: "client", dns: [], ips: [] }).includes("subjectAltName"),
  );
});

Deno.test("kubelet config reserves resources only when nodes are shrunk", () => {
  const n = nodeLayout("/c", 0);
  assert.equal(JSON.parse(kubeletConfig(n, "/p")).systemReserved, undefined);
  assert.equal(
    JSON.parse(kubeletConfig(n, "/p", { milliCpu: 0, memBytes: 0 })).systemReserved,
    undefined,
  );
  assert.deepEqual(
    JSON.parse(kubeletConfig(n, "/p", { milliCpu: 500, memBytes: 1024 })).systemReserved,
    { cpu: "500m", memory: "1024" },
  );
});
