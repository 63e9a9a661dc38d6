/**
 * The local cluster's fixed layout: addresses, ports, names and paths, computed from the cluster
 * directory and a node index, plus the zod schema of `<cluster dir>/cluster.json`, the file that
 * tells tests and tools where the running cluster is. Pure: no I/O.
 * @module
 */
import { z } from "zod";

/** Kubernetes and etcd versions of the binaries this layout was made for. */
export const K8S_VERSION = "v1.36.3";
/** etcd version built next to Kubernetes. */
export const ETCD_VERSION = "v3.6.16";

/** Default cluster directory (override with NEONVM_CLUSTER_DIR). */
export const DEFAULT_CLUSTER_DIR = "/var/lib/neonvm-ts/cluster";
/** Default cache directory for binaries and images (override with NEONVM_CACHE). */
export const DEFAULT_CACHE_DIR = "/var/cache/neonvm-ts";
/** Runtime directory holding node containerd sockets and state (tmpfs). */
export const RUN_DIR = "/run/neonvm-ts";

/** Host bridge joining every node; it exists only on this machine. */
export const BRIDGE = "nvts0";
/** The host's address on the bridge; the apiserver listens here. */
export const BRIDGE_IP = "10.213.0.1";
/** The node network (bridge subnet). */
export const NODE_NET_CIDR = "10.213.0.0/24";
/** All pod CIDRs together; node i gets 10.214.i.0/24. */
export const CLUSTER_POD_CIDR = "10.214.0.0/16";
/** Service ClusterIP range. */
export const SERVICE_CIDR = "10.215.0.0/24";
/** ClusterIP of the `default/kubernetes` Service (first address of the service range). */
export const KUBERNETES_SERVICE_IP = "10.215.0.1";
/** kube-apiserver secure port on BRIDGE_IP. */
export const APISERVER_PORT = 6443;
/** etcd client port on 127.0.0.1 (unusual, to stay clear of test etcds on 2379). */
export const ETCD_CLIENT_PORT = 22379;
/** etcd peer port on 127.0.0.1. */
export const ETCD_PEER_PORT = 22380;
/** kube-controller-manager secure (health/metrics) port on 127.0.0.1. */
export const KCM_PORT = 20257;
/** kube-scheduler (default-scheduler) secure (health/metrics) port on 127.0.0.1. */
export const SCHEDULER_PORT = 20259;
/** kubelet API port, on the node's own address inside its network namespace. */
export const KUBELET_PORT = 10250;
/** Largest node count `cluster:up --nodes` accepts. */
export const MAX_NODES = 8;

/** Name of the pause (sandbox) image set as containerd's sandbox_image. */
export const PAUSE_IMAGE = "localhost/neonvm-ts/pause:dev";
/** Name of the image every component runs from. */
export const RUNTIME_IMAGE = "localhost/neonvm-ts/runtime:dev";

/** apiserver URL as seen from the host, the nodes and (routed) the pods. */
export const APISERVER_URL = `https://${BRIDGE_IP}:${APISERVER_PORT}`;

/** Everything about node `i` that is fixed by the layout. */
export interface NodeLayout {
  /** Index from 0. */
  index: number;
  /** Kubernetes Node name. */
  name: string;
  /** Node address on the bridge (inside the node's network namespace). */
  ip: string;
  /** This node's pod CIDR. */
  podCidr: string;
  /** First address of the pod CIDR, the node's CNI bridge. */
  podGateway: string;
  /** Network namespace name (under /run/netns). */
  netns: string;
  /** Host end of the veth pair (the node end is `eth0` in the namespace). */
  vethHost: string;
  /** Directory for this node's kubelet, containerd root, CNI config and certs. */
  dir: string;
  /** Runtime directory for containerd state and sockets. */
  runDir: string;
  /** The node's own containerd socket. */
  containerdSocket: string;
  /** cgroup parent of every pod on this node (`cgroupRoot` of its kubelet). */
  cgroupRoot: string;
}

/** Computes node `index`'s layout inside cluster directory `dir`. */
export function nodeLayout(dir: string, index: number): NodeLayout {
  if (!Number.isInteger(index) || index < 0 || index >= MAX_NODES) {
    throw new RangeError(`node index ${index} outside 0..${MAX_NODES - 1}`);
  }
  const name = `node-${index}`;
  const runDir = `${RUN_DIR}/${name}`;
  return {
    index,
    name,
    ip: `10.213.0.${10 + index}`,
    podCidr: `10.214.${index}.0/24`,
    podGateway: `10.214.${index}.1`,
    netns: `nvts-${name}`,
    vethHost: `nvts-n${index}`,
    dir: `${dir}/nodes/${name}`,
    runDir,
    containerdSocket: `${runDir}/containerd.sock`,
    cgroupRoot: `/nvts-${name}`,
  };
}

/** One node as recorded in cluster.json. */
export const NodeRecordSchema = z.object({
  name: z.string(),
  ip: z.string(),
  containerdSocket: z.string(),
  podCidr: z.string(),
});

/** One node as recorded in cluster.json. */
export type NodeRecord = z.infer<typeof NodeRecordSchema>;

/** `<cluster dir>/cluster.json`: where the running cluster is; written by `cluster:up`. */
export const ClusterStateSchema = z.object({
  version: z.literal(1),
  dir: z.string(),
  kubeconfig: z.string(),
  binDir: z.string(),
  apiserverUrl: z.string(),
  k8sVersion: z.string(),
  nodes: z.array(NodeRecordSchema),
  /** Allocatable CPU per node (Kubernetes quantity) when `--node-cpu` shrank the nodes. */
  nodeCpu: z.string().optional(),
  /** Allocatable memory per node (Kubernetes quantity) when `--node-memory` shrank the nodes. */
  nodeMemory: z.string().optional(),
  /** KWOK fake nodes (`fake-<j>`), when `--fake-nodes` asked for some. */
  fakeNodes: z.object({
    names: z.array(z.string()),
    cpu: z.string(),
    memory: z.string(),
  }).optional(),
});

/** Parsed cluster.json. */
export type ClusterState = z.infer<typeof ClusterStateSchema>;

/** Paths of the control plane's files inside cluster directory `dir`. */
export function controlPlanePaths(dir: string) {
  return {
    stateFile: `${dir}/cluster.json`,
    pki: `${dir}/pki`,
    logs: `${dir}/logs`,
    pids: `${dir}/pids`,
    etcdData: `${dir}/etcd`,
    adminKubeconfig: `${dir}/admin.kubeconfig`,
    hostStateFile: `${dir}/host-state.json`,
  } as const;
}

/** The binary directory for the pinned versions under cache directory `cacheDir`. */
export function binDirFor(cacheDir: string): string {
  return `${cacheDir}/bin/k8s-${K8S_VERSION}-etcd-${ETCD_VERSION}`;
}
