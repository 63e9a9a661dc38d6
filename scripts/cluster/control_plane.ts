/**
 * The control plane processes (etcd, kube-apiserver, kube-controller-manager, kube-scheduler):
 * start each unless running, wait until it answers, and stop them in reverse order. Health checks
 * use the admin client certificate over TLS. Must not touch nodes.
 * @module
 */
import {
  apiserverCmd,
  controllerManagerCmd,
  etcdCmd,
  schedulerCmd,
  schedulerConfig,
} from "./configs.ts";
import { run, StepError, waitFor } from "./exec.ts";
import {
  APISERVER_URL,
  controlPlanePaths,
  ETCD_CLIENT_PORT,
  KCM_PORT,
  SCHEDULER_PORT,
} from "./layout.ts";
import { startDaemon, stopDaemon } from "./procs.ts";
import type { Logger } from "../../src/lib/log.ts";

/** The four control-plane processes in start order: step name and binary. */
export const CONTROL_PLANE = [
  { name: "etcd", bin: "etcd" },
  { name: "kube-apiserver", bin: "kube-apiserver" },
  { name: "kube-controller-manager", bin: "kube-controller-manager" },
  { name: "kube-scheduler", bin: "kube-scheduler" },
] as const;

/** Sends a request to the apiserver with the admin client certificate; returns status and body. */
export async function adminRequest(
  dir: string,
  path: string,
  init: { method?: string; body?: string; contentType?: string } = {},
): Promise<{ status: number; body: string }> {
  const pki = controlPlanePaths(dir).pki;
  const [ca, cert, key] = await Promise.all([
    Deno.readTextFile(`${pki}/ca.crt`),
    Deno.readTextFile(`${pki}/admin.crt`),
    Deno.readTextFile(`${pki}/admin.key`),
  ]);
  using client = Deno.createHttpClient({ caCerts: [ca], cert, key });
  const res = await fetch(`${APISERVER_URL}${path}`, {
    client,
    method: init.method ?? "GET",
    ...(init.body === undefined ? {} : { body: init.body }),
    headers: init.contentType ? { "content-type": init.contentType } : {},
    signal: AbortSignal.timeout(5000),
  });
  return { status: res.status, body: await res.text() };
}

async function insecureHealthz(url: string): Promise<boolean> {
  // kcm and scheduler serve health on self-signed certs; curl -k is the simplest honest probe.
  const r = await run(["curl", "-sk", "--max-time", "3", url], {
    step: "healthz",
    allowFail: true,
  });
  return r.code === 0 && r.stdout.trim() === "ok";
}

/** Starts (or keeps) the control plane and waits for each piece to answer. */
export async function upControlPlane(dir: string, binDir: string, log: Logger): Promise<void> {
  const p = controlPlanePaths(dir);
  const etcd = await startDaemon({
    name: "etcd",
    cmd: etcdCmd(binDir, p.etcdData),
    logFile: `${p.logs}/etcd.log`,
    pidDir: p.pids,
  });
  await waitFor("etcd", "etcd /health", async () => {
    const res = await fetch(`http://127.0.0.1:${ETCD_CLIENT_PORT}/health`, {
      signal: AbortSignal.timeout(2000),
    });
    const body = await res.text();
    return res.ok && body.includes('"health":"true"');
  }, { timeoutMs: 30_000, logFile: `${p.logs}/etcd.log` });
  log.info(etcd.started ? "etcd started" : "etcd running", { pid: etcd.pid });

  const api = await startDaemon({
    name: "kube-apiserver",
    cmd: apiserverCmd(binDir, p.pki),
    logFile: `${p.logs}/kube-apiserver.log`,
    pidDir: p.pids,
  });
  await waitFor("kube-apiserver", "apiserver /readyz", async () => {
    const r = await adminRequest(dir, "/readyz");
    return r.status === 200;
  }, { timeoutMs: 120_000, intervalMs: 500, logFile: `${p.logs}/kube-apiserver.log` });
  log.info(api.started ? "kube-apiserver started" : "kube-apiserver running", {
    pid: api.pid,
    url: APISERVER_URL,
  });

  const kcm = await startDaemon({
    name: "kube-controller-manager",
    cmd: controllerManagerCmd(binDir, p.pki, `${dir}/controller-manager.kubeconfig`),
    logFile: `${p.logs}/kube-controller-manager.log`,
    pidDir: p.pids,
  });
  const schedConfig = schedulerConfig(`${dir}/scheduler.kubeconfig`);
  await Deno.writeTextFile(`${dir}/scheduler.yaml`, schedConfig);
  const sched = await startDaemon({
    configText: schedConfig,
    name: "kube-scheduler",
    cmd: schedulerCmd(binDir, `${dir}/scheduler.yaml`, `${dir}/scheduler.kubeconfig`),
    logFile: `${p.logs}/kube-scheduler.log`,
    pidDir: p.pids,
  });
  await waitFor(
    "kube-controller-manager",
    "controller-manager /healthz",
    () => insecureHealthz(`https://127.0.0.1:${KCM_PORT}/healthz`),
    { timeoutMs: 60_000, intervalMs: 500, logFile: `${p.logs}/kube-controller-manager.log` },
  );
  log.info(kcm.started ? "kube-controller-manager started" : "kube-controller-manager running", {
    pid: kcm.pid,
  });
  await waitFor(
    "kube-scheduler",
    "scheduler /healthz",
    () => insecureHealthz(`https://127.0.0.1:${SCHEDULER_PORT}/healthz`),
    { timeoutMs: 60_000, intervalMs: 500, logFile: `${p.logs}/kube-scheduler.log` },
  );
  log.info(sched.started ? "kube-scheduler started" : "kube-scheduler running", { pid: sched.pid });
}

/** Stops the control plane in reverse start order. */
export async function downControlPlane(dir: string, log: Logger): Promise<void> {
  const p = controlPlanePaths(dir);
  for (const c of [...CONTROL_PLANE].reverse()) {
    if (await stopDaemon(p.pids, c.name, c.bin, 15_000)) log.info(`${c.name} stopped`, {});
  }
}

/** Throws a StepError naming `step` when `ok` is false. */
export function ensure(ok: boolean, step: string, message: string): void {
  if (!ok) throw new StepError(step, message);
}
