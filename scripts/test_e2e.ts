/**
 * `deno task test:e2e`: the multi-process, real-QEMU and cluster suites under tests/, one
 * `deno test` process per file in a fixed order, ending with the whole-stack suites of tests/e2e
 * (CPU scaling with pgbench, a memory hog met by the monitor's fast path, restarts mid scale-up,
 * a nearly full node audited every second: 3–8 minutes each here without KVM); `deno task
 * test:stack` runs the same four and any other tests/e2e suite. tests/e2e goes last, because its
 * deployed controller would act on the other suites' objects.
 * Positionals are directories (every `*_test.ts` in them) or single test files.
 *
 * Guests run under TCG on two shared cores, where boot and hotplug times swing widely; a file that
 * fails is run once more, and the run says so loudly. A file that fails twice fails the run.
 * Each file has a time limit so a hung guest cannot stall CI. Never imported by src/.
 * @module
 */
import { parseArgs } from "node:util";
import { createLogger } from "../src/lib/log.ts";

const ORDER = [
  "tests/harness",
  "tests/cluster",
  "tests/crds",
  "tests/monitor",
  "tests/agent",
  "tests/runner",
  "tests/controller",
  "tests/scheduler",
  "tests/vm-builder",
  "tests/e2e/cpu_scaling_test.ts",
  "tests/e2e/memory_fastpath_test.ts",
  "tests/e2e/restart_test.ts",
  "tests/e2e/full_node_test.ts",
];

const log = createLogger("test-e2e");
const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    "timeout-minutes": { type: "string", default: "20" },
    retries: { type: "string", default: "1" },
  },
});
const timeoutMs = Number(values["timeout-minutes"]) * 60_000;
const retries = Number(values.retries);
if (!(timeoutMs > 0) || !(retries >= 0)) {
  log.error("invalid flags", {
    timeoutMinutes: values["timeout-minutes"],
    retries: values.retries,
  });
  Deno.exit(2);
}

async function testFiles(dir: string): Promise<string[]> {
  if (dir.endsWith("_test.ts")) return [dir];
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && e.name.endsWith("_test.ts")) out.push(`${dir}/${e.name}`);
  }
  return out.sort();
}

async function runFile(file: string): Promise<{ ok: boolean; passed: number; failed: number }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["test", "-A", file],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const timer = setTimeout(() => {
    log.error("test file timed out; killing it", { file, timeoutMs });
    child.kill("SIGKILL");
  }, timeoutMs);
  let text = "";
  const dec = new TextDecoder();
  for await (const chunk of child.stdout) {
    await Deno.stdout.write(chunk);
    text += dec.decode(chunk, { stream: true });
  }
  const status = await child.status;
  clearTimeout(timer);
  // deno test's closing line: "ok | 3 passed | 0 failed" or "FAILED | 2 passed | 1 failed".
  const m = [...text.matchAll(/(?:ok|FAILED) \| (\d+) passed[^|]*\| (\d+) failed/g)].pop();
  return { ok: status.success, passed: Number(m?.[1] ?? 0), failed: Number(m?.[2] ?? 0) };
}

const dirs = positionals.length > 0 ? positionals : ORDER;
const files = (await Promise.all(dirs.map(testFiles))).flat();
let passed = 0;
let failed = 0;
const flaky: string[] = [];
const broken: string[] = [];
const t0 = Date.now();
for (const file of files) {
  const start = Date.now();
  let r = await runFile(file);
  for (let attempt = 1; !r.ok && attempt <= retries; attempt++) {
    log.warn("test file failed; running it once more", { file, attempt });
    r = await runFile(file);
    if (r.ok) flaky.push(file);
  }
  if (!r.ok) broken.push(file);
  passed += r.passed;
  failed += r.ok ? 0 : Math.max(1, r.failed);
  log.info("test file done", { file, ok: r.ok, seconds: Math.round((Date.now() - start) / 1000) });
}
log.info("e2e suites done", {
  files: files.length,
  minutes: Math.round((Date.now() - t0) / 6000) / 10,
  flaky,
  broken,
});
// The plain closing line CI reads.
await Deno.stdout.write(new TextEncoder().encode(`e2e: ${passed} passed, ${failed} failed\n`));
Deno.exit(broken.length > 0 ? 1 : 0);
