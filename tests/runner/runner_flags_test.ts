/**
 * The runner process itself on bad input: bad flags or a missing K8S_POD_NAME exit with status
 * 2 and one JSON log line naming the problem, before anything is started.
 * @module
 */
import assert from "node:assert/strict";

const REPO = new URL("../../", import.meta.url).pathname;

async function runRunner(args: string[], env: Record<string, string>) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--cached-only", `${REPO}src/runner/main.ts`, ...args],
    cwd: REPO,
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("bad flags exit 2 with a JSON error naming the flag", async () => {
  const r = await runRunner(["-vmspec", "x", "-cpu-scaling-mode", "Nope"], {
    K8S_POD_NAME: "p",
    PATH: Deno.env.get("PATH") ?? "",
  });
  assert.equal(r.code, 2);
  const line = JSON.parse(r.stderr.trim().split("\n").at(-1)!);
  assert.equal(line.msg, "bad configuration");
  assert.match(line.error, /cpu-scaling-mode/);
  assert.match(line.error, /memhp-auto-movable-ratio/);
});

Deno.test("missing K8S_POD_NAME exits 2", async () => {
  const r = await runRunner([
    "-vmspec",
    "x",
    "-cpu-scaling-mode",
    "QmpScaling",
    "-memhp-auto-movable-ratio",
    "301",
  ], { PATH: Deno.env.get("PATH") ?? "" });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /K8S_POD_NAME/);
});
