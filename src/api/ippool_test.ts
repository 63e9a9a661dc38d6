import assert from "node:assert/strict";
import { parseOrThrow, parseResult } from "./_parse.ts";
import { encodeIpPool, ipPoolName, IpPoolSchema } from "./ippool.ts";

Deno.test("IPPool round-trips and names follow §2.5", () => {
  const text = [
    '{"apiVersion":"vm.neon.tech/v1","kind":"IPPool","metadata":{"name":"extra-10.100.0.0-16",',
    '"namespace":"default"},"spec":{"allocations":{"5":{"id":"abc","podref":"default/vm-x"}},',
    '"range":"10.100.0.0/16"}}',
  ].join("");
  const p = parseOrThrow(IpPoolSchema, JSON.parse(text), "IPPool");
  assert.equal(JSON.stringify(encodeIpPool(p)), text);
  assert.equal(ipPoolName("10.100.0.0/16", "extra"), "extra-10.100.0.0-16");
  assert.equal(ipPoolName("10.100.0.0/16"), "10.100.0.0-16");
  const bad = parseResult(IpPoolSchema, {
    apiVersion: "vm.neon.tech/v1",
    kind: "IPPool",
    metadata: {},
    spec: { range: "x", allocations: { "1": { podref: "y" } } },
  }, "IPPool");
  assert.ok(!bad.ok && bad.error.paths.includes('spec.allocations["1"].id'));
});
