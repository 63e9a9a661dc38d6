import assert from "node:assert/strict";
import { DEFAULT_OVERLAY, planRefresh } from "../core/plan.ts";
import { apply, type Exec, observe } from "./host.ts";

/** A fake host that understands just enough of ip/bridge/iptables to converge. */
function fakeHost() {
  const links = new Set<string>(["lo", "eth0"]);
  const fdb = new Set<string>();
  const chains = new Map<string, string[]>();
  let jump = false;
  const ran: string[] = [];
  const ok = (stdout = "") => ({ code: 0, stdout, stderr: "" });
  const exec: Exec = (cmd, args) => {
    const a = [...args];
    ran.push([cmd, ...a].join(" "));
    if (cmd === "ip" && a[0] === "-j") {
      return Promise.resolve(ok(JSON.stringify([...links].map((ifname) => ({ ifname })))));
    }
    if (cmd === "ip" && a[1] === "add") links.add(a[2]!);
    if (cmd === "bridge" && a[0] === "-j") {
      return Promise.resolve(
        ok(JSON.stringify([...fdb].map((dst) => ({ mac: "00:00:00:00:00:00", dst })))),
      );
    }
    if (cmd === "bridge" && a[1] === "append") fdb.add(a[6]!);
    if (cmd === "iptables") {
      const op = a[2];
      const chain = a[3]!;
      if (op === "-S") {
        const rules = chains.get(chain);
        return Promise.resolve(
          rules
            ? ok([`-N ${chain}`, ...rules.map((r) => `-A ${chain} ${r}`)].join("\n"))
            : { code: 1, stdout: "", stderr: "No chain" },
        );
      }
      if (op === "-N") chains.set(chain, []);
      if (op === "-A") chains.get(chain)!.push(a.slice(4).join(" "));
      if (op === "-C") return Promise.resolve(jump ? ok() : { code: 1, stdout: "", stderr: "" });
      if (op === "-I") jump = true;
    }
    return Promise.resolve(ok());
  };
  return { exec, ran };
}

Deno.test("observe then apply converges; a second round plans nothing", async () => {
  const host = fakeHost();
  const first = planRefresh(
    DEFAULT_OVERLAY,
    "10.0.0.1",
    ["10.0.0.2"],
    await observe(host.exec, DEFAULT_OVERLAY),
  );
  assert.ok(first.length > 0);
  await apply(host.exec, first);
  const second = planRefresh(
    DEFAULT_OVERLAY,
    "10.0.0.1",
    ["10.0.0.2"],
    await observe(host.exec, DEFAULT_OVERLAY),
  );
  assert.deepEqual(second, []);
});

Deno.test("a failing command stops the round and names the command", async () => {
  const exec: Exec = () =>
    Promise.resolve({ code: 2, stdout: "", stderr: "Operation not permitted" });
  await assert.rejects(
    apply(exec, [{ cmd: "ip", args: ["link", "add", "x", "type", "bridge"] }]),
    /Cannot run "ip link add x type bridge": Operation not permitted/,
  );
});
