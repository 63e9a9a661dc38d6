/**
 * The local cluster's certificates and kubeconfigs, made with the openssl CLI: one CA, the
 * apiserver serving cert, client certs for admin, controller-manager, scheduler, the apiserver's
 * kubelet client and each node, a serving cert per kubelet, and the ServiceAccount signing key.
 * Existing files are reused. Must not write outside the cluster's pki directory and kubeconfigs.
 * @module
 */
import { exists, run } from "./exec.ts";
import { APISERVER_URL, BRIDGE_IP, KUBERNETES_SERVICE_IP, type NodeLayout } from "./layout.ts";

/** A certificate request: subject, usage and SANs. */
export interface CertSpec {
  /** File stem under the pki dir: `<name>.crt`, `<name>.key`. */
  name: string;
  /** Common name (the user name for client certs). */
  cn: string;
  /** Organisations (the groups for client certs). */
  orgs?: string[];
  /** `client`, `server` or both. */
  usage: "client" | "server" | "both";
  /** DNS SANs. */
  dns?: string[];
  /** IP SANs. */
  ips?: string[];
}

/** The OpenSSL extension file text for `spec`; pure. */
export function extFileText(spec: CertSpec): string {
  const eku = spec.usage === "client"
    ? "clientAuth"
    : spec.usage === "server"
    ? "serverAuth"
    : "serverAuth,clientAuth";
  const lines = [
    "basicConstraints=critical,CA:FALSE",
    "keyUsage=critical,digitalSignature,keyEncipherment",
    `extendedKeyUsage=${eku}`,
  ];
  const sans = [
    ...(spec.dns ?? []).map((d) => `DNS:${d}`),
    ...(spec.ips ?? []).map((i) => `IP:${i}`),
  ];
  if (sans.length > 0) lines.push(`subjectAltName=${sans.join(",")}`);
  return lines.join("\n") + "\n";
}

/** The `-subj` argument for `spec`; pure. */
export function subject(spec: CertSpec): string {
  return [...(spec.orgs ?? []).map((o) => `/O=${o}`), `/CN=${spec.cn}`].join("");
}

/** The certificates the control plane needs. */
export function controlPlaneCerts(): CertSpec[] {
  return [
    {
      name: "apiserver",
      cn: "kube-apiserver",
      usage: "server",
      dns: [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "localhost",
      ],
      ips: [BRIDGE_IP, KUBERNETES_SERVICE_IP, "127.0.0.1"],
    },
    { name: "admin", cn: "neonvm-ts-admin", orgs: ["system:masters"], usage: "client" },
    { name: "controller-manager", cn: "system:kube-controller-manager", usage: "client" },
    { name: "scheduler", cn: "system:kube-scheduler", usage: "client" },
    {
      name: "apiserver-kubelet-client",
      cn: "kube-apiserver-kubelet-client",
      orgs: ["system:masters"],
      usage: "client",
    },
  ];
}

/** The certificates node `n` needs: its kubelet client cert and its kubelet serving cert. */
export function nodeCerts(n: NodeLayout): CertSpec[] {
  return [
    { name: `${n.name}`, cn: `system:node:${n.name}`, orgs: ["system:nodes"], usage: "client" },
    { name: `${n.name}-serving`, cn: n.name, usage: "server", dns: [n.name], ips: [n.ip] },
  ];
}

/** Creates the CA and the ServiceAccount key pair when missing. */
export async function ensureCa(pki: string, logFile: string): Promise<void> {
  await Deno.mkdir(pki, { recursive: true, mode: 0o700 });
  const step = "pki.ca";
  if (!(await exists(`${pki}/ca.crt`))) {
    await run(
      [
        "openssl",
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        `${pki}/ca.key`,
      ],
      { step, logFile },
    );
    await run([
      "openssl",
      "req",
      "-x509",
      "-new",
      "-key",
      `${pki}/ca.key`,
      "-subj",
      "/CN=neonvm-ts-local-ca",
      "-days",
      "3650",
      "-sha256",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
      "-out",
      `${pki}/ca.crt`,
    ], { step, logFile });
  }
  if (!(await exists(`${pki}/sa.key`))) {
    await run(["openssl", "genrsa", "-out", `${pki}/sa.key`, "2048"], { step: "pki.sa", logFile });
    await run(["openssl", "rsa", "-in", `${pki}/sa.key`, "-pubout", "-out", `${pki}/sa.pub`], {
      step: "pki.sa",
      logFile,
    });
  }
}

/** Creates `<name>.key` and `<name>.crt` signed by the CA when missing. */
export async function ensureCert(pki: string, spec: CertSpec, logFile: string): Promise<void> {
  const crt = `${pki}/${spec.name}.crt`;
  if (await exists(crt)) return;
  const step = `pki.${spec.name}`;
  const key = `${pki}/${spec.name}.key`;
  await run(
    ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key],
    { step, logFile },
  );
  const ext = `${pki}/${spec.name}.ext`;
  await Deno.writeTextFile(ext, extFileText(spec));
  await run([
    "openssl",
    "req",
    "-new",
    "-key",
    key,
    "-subj",
    subject(spec),
    "-out",
    `${pki}/${spec.name}.csr`,
  ], { step, logFile });
  await run([
    "openssl",
    "x509",
    "-req",
    "-in",
    `${pki}/${spec.name}.csr`,
    "-CA",
    `${pki}/ca.crt`,
    "-CAkey",
    `${pki}/ca.key`,
    "-CAcreateserial",
    "-days",
    "3650",
    "-sha256",
    "-extfile",
    ext,
    "-out",
    `${crt}.tmp`,
  ], { step, logFile });
  await Deno.rename(`${crt}.tmp`, crt);
  await Deno.remove(`${pki}/${spec.name}.csr`);
  await Deno.remove(ext);
}

/** Kubeconfig YAML for user `user` with embedded CA and client cert data; pure. */
export function kubeconfigText(
  user: string,
  server: string,
  caPem: string,
  certPem: string,
  keyPem: string,
): string {
  // PEM is ASCII, so btoa applies directly.
  const b64 = (s: string) => btoa(s);
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "- name: neonvm-ts",
    "  cluster:",
    `    server: ${server}`,
    `    certificate-authority-data: ${b64(caPem)}`,
    "users:",
    `- name: ${user}`,
    "  user:",
    `    client-certificate-data: ${b64(certPem)}`,
    `    client-key-data: ${b64(keyPem)}`,
    "contexts:",
    "- name: neonvm-ts",
    "  context:",
    "    cluster: neonvm-ts",
    `    user: ${user}`,
    "current-context: neonvm-ts",
    "",
  ].join("\n");
}

/** Writes `<out>` as a kubeconfig for the client cert `<pki>/<certName>.crt`. */
export async function writeKubeconfig(pki: string, certName: string, out: string): Promise<void> {
  const [ca, crt, key] = await Promise.all([
    Deno.readTextFile(`${pki}/ca.crt`),
    Deno.readTextFile(`${pki}/${certName}.crt`),
    Deno.readTextFile(`${pki}/${certName}.key`),
  ]);
  const text = kubeconfigText(certName, APISERVER_URL, ca, crt, key);
  await Deno.writeTextFile(`${out}.tmp`, text, { mode: 0o600 });
  await Deno.rename(`${out}.tmp`, out);
}
