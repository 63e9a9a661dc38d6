/**
 * Reads the node's overlay state and runs planned commands with `ip`, `bridge` and `iptables`.
 * The only place the vxlan component touches the host network.
 * @module
 */
import { z } from "zod";
import { RemoteError } from "../../lib/errors.ts";
import type { Command, ObservedState, OverlayConfig } from "../core/plan.ts";

/** Result of running one program. */
export interface ExecResult {
  /** Exit code. */
  readonly code: number;
  /** Standard output. */
  readonly stdout: string;
  /** Standard error. */
  readonly stderr: string;
}

/** Runs a program; injectable so tests can fake the host. */
export type Exec = (cmd: string, args: readonly string[]) => Promise<ExecResult>;

/** Runs a program on this host. */
export const hostExec: Exec = async (cmd, args) => {
  const out = await new Deno.Command(cmd, { args: [...args], stdout: "piped", stderr: "piped" })
    .output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
};

const LinkListSchema = z.array(z.object({ ifname: z.string() }).loose());
const FdbListSchema = z.array(z.object({ mac: z.string(), dst: z.string().optional() }).loose());

function parseJson<T>(schema: z.ZodType<T>, text: string, what: string): T {
  let raw: unknown;
  try {
    raw = JSON.parse(text.trim() === "" ? "[]" : text);
  } catch (cause) {
    throw new RemoteError(`Cannot parse ${what}: not JSON`, { cause });
  }
  const r = schema.safeParse(raw);
  if (!r.success) throw new RemoteError(`Cannot parse ${what}: ${r.error.message}`);
  return r.data;
}

/** Reads links, flood entries and NAT rules relevant to the overlay. */
export async function observe(exec: Exec, cfg: OverlayConfig): Promise<ObservedState> {
  const links = await exec("ip", ["-j", "link", "show"]);
  if (links.code !== 0) throw new RemoteError(`Cannot list links: ${links.stderr.trim()}`);
  const linkNames = new Set(
    parseJson(LinkListSchema, links.stdout, "ip link").map((l) => l.ifname),
  );

  const fdbDestinations = new Set<string>();
  if (linkNames.has(cfg.vxlanName)) {
    const fdb = await exec("bridge", ["-j", "fdb", "show", "dev", cfg.vxlanName]);
    if (fdb.code !== 0) throw new RemoteError(`Cannot list FDB: ${fdb.stderr.trim()}`);
    for (const e of parseJson(FdbListSchema, fdb.stdout, "bridge fdb")) {
      if (e.mac === "00:00:00:00:00:00" && e.dst !== undefined) fdbDestinations.add(e.dst);
    }
  }

  const chain = await exec("iptables", ["-t", "nat", "-S", cfg.natChain]);
  const natChainExists = chain.code === 0;
  const natChainRules = new Set<string>();
  if (natChainExists) {
    const prefix = `-A ${cfg.natChain} `;
    for (const l of chain.stdout.split("\n")) {
      if (l.startsWith(prefix)) natChainRules.add(l.slice(prefix.length).trim());
    }
  }
  const jump = await exec("iptables", [
    "-t",
    "nat",
    "-C",
    "POSTROUTING",
    "-d",
    cfg.extraNetCidr,
    "-j",
    cfg.natChain,
  ]);
  return {
    links: linkNames,
    fdbDestinations,
    natChainExists,
    natChainRules,
    postroutingJump: jump.code === 0,
  };
}

/** Runs commands in order; the first failure stops the round with an error naming the command. */
export async function apply(exec: Exec, commands: readonly Command[]): Promise<void> {
  for (const c of commands) {
    const r = await exec(c.cmd, c.args);
    if (r.code !== 0) {
      throw new RemoteError(`Cannot run "${[c.cmd, ...c.args].join(" ")}": ${r.stderr.trim()}`, {
        status: r.code,
      });
    }
  }
}
