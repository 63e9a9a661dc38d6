import assert from "node:assert/strict";
import { loadClusterAccess } from "./kubeconfig.ts";
import { ConfigError } from "../errors.ts";

const b64 = (s: string) => btoa(s);

Deno.test("kubeconfig: embedded CA/cert/key, context namespace, relative files", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/ca.pem`, "CA-FROM-FILE");
    await Deno.writeTextFile(
      `${dir}/config`,
      `
apiVersion: v1
kind: Config
current-context: a
contexts:
- name: a
  context: { cluster: c1, user: u1, namespace: team }
- name: b
  context: { cluster: c2, user: u2 }
clusters:
- name: c1
  cluster: { server: "https://10.0.0.1:6443/", certificate-authority-data: "${b64("CA-PEM")}" }
- name: c2
  cluster: { server: "https://10.0.0.2:6443", certificate-authority: ca.pem }
users:
- name: u1
  user: { client-certificate-data: "${b64("CERT")}", client-key-data: "${b64("KEY")}" }
- name: u2
  user: { token: "tok" }
`,
    );
    const a = await loadClusterAccess({ kubeconfigPath: `${dir}/config` });
    assert.deepEqual(a, {
      server: "https://10.0.0.1:6443",
      namespace: "team",
      caPem: "CA-PEM",
      certPem: "CERT",
      keyPem: "KEY",
    });
    const b = await loadClusterAccess({ kubeconfigPath: `${dir}/config`, context: "b" });
    assert.deepEqual(b, {
      server: "https://10.0.0.2:6443",
      namespace: "default",
      caPem: "CA-FROM-FILE",
      token: "tok",
    });
    await assert.rejects(
      loadClusterAccess({ kubeconfigPath: `${dir}/missing` }),
      (e) => e instanceof ConfigError,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
