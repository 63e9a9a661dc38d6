/**
 * Loads how to reach the Kubernetes API server: a kubeconfig file, the `KUBECONFIG` environment
 * variable, `~/.kube/config`, or the in-cluster service account, through
 * `@kubernetes/client-node`'s `KubeConfig`. Returns plain data (server URL, PEM material, token
 * source); it does not make requests.
 * @module
 */
import { KubeConfig } from "@kubernetes/client-node";
import { ConfigError } from "../errors.ts";

/** Everything needed to talk to one API server, as plain data. */
export interface ClusterAccess {
  /** Base URL, e.g. `https://127.0.0.1:6443`. */
  readonly server: string;
  /** CA bundle (PEM) that signs the server certificate, when not a public CA. */
  readonly caPem?: string;
  /** Client certificate (PEM) for mutual TLS. */
  readonly certPem?: string;
  /** Client private key (PEM) for mutual TLS. */
  readonly keyPem?: string;
  /** Static bearer token. */
  readonly token?: string;
  /** File holding a bearer token that is re-read periodically (service-account projection). */
  readonly tokenFile?: string;
  /** Default namespace of the selected context (in-cluster: the pod's namespace). */
  readonly namespace: string;
}

/** Options for {@linkcode loadClusterAccess}. */
export interface LoadClusterAccessOptions {
  /** Explicit kubeconfig path; otherwise `KUBECONFIG`, `~/.kube/config`, or in-cluster. */
  kubeconfigPath?: string;
  /** Context to select instead of the file's current context. */
  context?: string;
}

function decodeB64(data: string): string {
  const bin = atob(data);
  const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

async function readPem(data: string | undefined, file: string | undefined, what: string) {
  if (data) return decodeB64(data);
  if (file) {
    try {
      return await Deno.readTextFile(file);
    } catch (cause) {
      throw new ConfigError(`Cannot read ${what} file "${file}"`, { cause });
    }
  }
  return undefined;
}

/** Loads cluster access from kubeconfig or the in-cluster service account. */
export async function loadClusterAccess(
  options: LoadClusterAccessOptions = {},
): Promise<ClusterAccess> {
  const kc = new KubeConfig();
  try {
    if (options.kubeconfigPath) kc.loadFromFile(options.kubeconfigPath);
    else kc.loadFromDefault();
    if (options.context) kc.setCurrentContext(options.context);
  } catch (cause) {
    throw new ConfigError("Cannot load kubeconfig", { cause });
  }
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  if (!cluster) throw new ConfigError("Cannot load kubeconfig: no current cluster");
  if (cluster.skipTLSVerify) {
    // Deno's fetch cannot skip verification per client; refuse rather than silently verify.
    throw new ConfigError("Cannot use kubeconfig: insecure-skip-tls-verify is not supported");
  }
  const ctx = kc.getContextObject(kc.getCurrentContext());
  const caPem = await readPem(cluster.caData, cluster.caFile, "certificate-authority");
  const certPem = await readPem(user?.certData, user?.certFile, "client-certificate");
  const keyPem = await readPem(user?.keyData, user?.keyFile, "client-key");
  const providerConfig: unknown = user?.authProvider?.config;
  let tokenFile: string | undefined;
  if (
    user?.authProvider?.name === "tokenFile" && typeof providerConfig === "object" &&
    providerConfig !== null && "tokenFile" in providerConfig &&
    typeof providerConfig.tokenFile === "string"
  ) {
    tokenFile = providerConfig.tokenFile;
  }
  return {
    server: cluster.server.replace(/\/+$/, ""),
    namespace: ctx?.namespace?.trim() || "default",
    ...(caPem !== undefined ? { caPem } : {}),
    ...(certPem !== undefined ? { certPem } : {}),
    ...(keyPem !== undefined ? { keyPem } : {}),
    ...(user?.token ? { token: user.token } : {}),
    ...(tokenFile !== undefined ? { tokenFile } : {}),
  };
}
