/**
 * Tests for command running and pid-file daemons with real short-lived processes: failures name
 * the step and log, output reaches the log, a daemon is found by its pid file and stopped.
 * @module
 */
import assert from "node:assert/strict";
import { run, StepError } from "./exec.ts";
import { pidRuns, runningPid, startDaemon, stopDaemon } from "./procs.ts";

Deno.test("run: a failing command throws a StepError naming step and log; output is logged", async () => {
  const dir = await Deno.makeTempDir();
  const logFile = `${dir}/x.log`;
  await assert.rejects(
    run(["sh", "-c", "echo to-out; echo to-err >&2; exit 3"], { step: "demo.step", logFile }),
    (err: unknown) =>
      err instanceof StepError && err.step === "demo.step" && err.logFile === logFile &&
      /exited 3/.test(err.message) && err.message.includes(logFile),
  );
  const text = await Deno.readTextFile(logFile);
  assert.match(text, /to-out/);
  assert.match(text, /to-err/);
  assert.match(text, /\[exit 3\]/);
  const ok = await run(["sh", "-c", "exit 4"], { step: "s", allowFail: true });
  assert.equal(ok.code, 4);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("startDaemon/stopDaemon: detached process tracked by pid file", async () => {
  const dir = await Deno.makeTempDir();
  const spec = { name: "sleeper", cmd: ["/bin/sleep", "30"], logFile: `${dir}/s.log`, pidDir: dir };
  const a = await startDaemon(spec);
  assert.equal(a.started, true);
  assert.equal(await pidRuns(a.pid, "sleep"), true);
  const b = await startDaemon(spec);
  assert.deepEqual(b, { pid: a.pid, started: false }, "a running daemon is reused");
  assert.equal(await runningPid(dir, "sleeper", "other-binary"), undefined);
  assert.equal(await stopDaemon(dir, "sleeper", "sleep", 2000), true);
  assert.equal(await pidRuns(a.pid, "sleep"), false);
  assert.equal(await stopDaemon(dir, "sleeper", "sleep", 2000), false);
  await Deno.remove(dir, { recursive: true });
});
