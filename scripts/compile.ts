/**
 * `deno task compile`: builds one self-contained binary per component with `deno compile` into
 * `dist/`. `deno compile` downloads its base runtime (denort) unless `DENORT_BIN` points at one; where
 * that is impossible (offline machines), `--bundle` writes one bundled JS file per component instead,
 * runnable with `deno run -A dist/<component>.js`. Never imported by src/.
 * @module
 */
import { parseArgs } from "node:util";
import { createLogger } from "../src/lib/log.ts";

const ENTRIES: Record<string, string> = {
  controller: "src/controller/main.ts",
  runner: "src/runner/main.ts",
  scheduler: "src/scheduler/main.ts",
  agent: "src/agent/main.ts",
  monitor: "src/monitor/main.ts",
  daemon: "src/daemon/main.ts",
  "vm-builder": "vm-builder/main.ts",
};

const log = createLogger("compile");
const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    bundle: { type: "boolean", default: false },
    out: { type: "string", default: "dist" },
    target: { type: "string" },
  },
});
const wanted = positionals.length > 0 ? positionals : Object.keys(ENTRIES);
const unknown = wanted.filter((c) => !(c in ENTRIES));
if (unknown.length > 0) {
  log.error("unknown component", { components: unknown, known: Object.keys(ENTRIES) });
  Deno.exit(2);
}
await Deno.mkdir(values.out, { recursive: true });
let failed = 0;
for (const name of wanted) {
  const entry = ENTRIES[name]!;
  try {
    await Deno.stat(entry);
  } catch {
    log.warn("component entry point missing, skipped", { component: name, entry });
    continue;
  }
  const args = values.bundle ? ["bundle", "--quiet", "-o", `${values.out}/${name}.js`, entry] : [
    "compile",
    "-A",
    "--quiet",
    ...(values.target ? ["--target", values.target] : []),
    "--output",
    `${values.out}/${name}`,
    entry,
  ];
  log.info("building", { component: name, mode: values.bundle ? "bundle" : "compile" });
  const out = await new Deno.Command(Deno.execPath(), { args, stderr: "piped", stdout: "piped" })
    .output();
  if (!out.success) {
    failed++;
    const stderr = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-3).join(" | ");
    log.error("build failed", {
      component: name,
      stderr,
      hint: values.bundle
        ? undefined
        : "deno compile needs its base runtime (denort) from dl.deno.land or DENORT_BIN; offline, use --bundle",
    });
  } else {
    log.info("built", {
      component: name,
      output: `${values.out}/${name}${values.bundle ? ".js" : ""}`,
    });
  }
}
Deno.exit(failed > 0 ? 1 : 0);
