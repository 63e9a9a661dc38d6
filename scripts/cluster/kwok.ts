/**
 * Fake nodes for scale tests (DECISIONS D8): Node objects `fake-<j>` managed by the upstream KWOK
 * controller, which keeps them Ready (node leases) and moves pods bound to them to Running and,
 * once deleted, away. Our own Stage documents and Node template are rendered here (pure); the
 * caller starts kwok and creates the Nodes. Fake nodes carry a NoSchedule taint so only pods that
 * tolerate it land there. Must not manage the real nodes.
 * @module
 */

/** Annotation KWOK selects its nodes by. */
export const FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node";
/** Taint key on every fake node (value `fake`, effect NoSchedule). */
export const FAKE_NODE_TAINT = "kwok.x-k8s.io/node";
/** Address KWOK reports for fake nodes (in the bridge subnet, assigned to nothing). */
export const FAKE_NODE_IP = "10.213.0.250";

/** Name of fake node `j`. */
export function fakeNodeName(j: number): string {
  return `fake-${j}`;
}

/** Pod CIDR of fake node `j` (addresses are bookkeeping only; nothing routes there). */
export function fakeNodePodCidr(j: number): string {
  return `10.214.${100 + j}.0/24`;
}

/** The Node object for fake node `j` with the given capacity. */
export function fakeNodeObject(j: number, cpu: string, memory: string): Record<string, unknown> {
  const name = fakeNodeName(j);
  const resources = { cpu, memory, pods: "110" };
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name,
      annotations: { [FAKE_NODE_ANNOTATION]: "fake" },
      labels: {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "type": "kwok",
        "neonvm-ts/fake-node": "true",
      },
    },
    spec: {
      podCIDR: fakeNodePodCidr(j),
      podCIDRs: [fakeNodePodCidr(j)],
      taints: [{ key: FAKE_NODE_TAINT, value: "fake", effect: "NoSchedule" }],
    },
    status: { capacity: resources, allocatable: resources },
  };
}

function stage(name: string, kind: string, spec: Record<string, unknown>): string {
  return JSON.stringify({
    apiVersion: "kwok.x-k8s.io/v1alpha1",
    kind: "Stage",
    metadata: { name },
    spec: { resourceRef: { apiGroup: "v1", kind }, ...spec },
  });
}

const NODE_READY_STATUS = `
conditions:
{{ range NodeConditions }}
- type: {{ .type | Quote }}
  status: {{ .status | Quote }}
  reason: {{ .reason | Quote }}
  message: {{ .message | Quote }}
  lastHeartbeatTime: {{ Now | Quote }}
  lastTransitionTime: {{ StartTime | Quote }}
{{ end }}
addresses:
- type: InternalIP
  address: {{ NodeIP | Quote }}
- type: Hostname
  address: {{ .metadata.name | Quote }}
nodeInfo:
  architecture: amd64
  operatingSystem: linux
  kubeletVersion: fake
  kubeProxyVersion: fake
  containerRuntimeVersion: fake
phase: Running
`;

const POD_RUNNING_STATUS = `
{{ $now := Now }}
phase: Running
startTime: {{ $now | Quote }}
hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
podIP: {{ PodIPWith .spec.nodeName (or .spec.hostNetwork false) (or .metadata.uid "") (or .metadata.name "") (or .metadata.namespace "") | Quote }}
conditions:
{{ range (list "PodScheduled" "Initialized" "ContainersReady" "Ready") }}
- type: {{ . }}
  status: "True"
  lastTransitionTime: {{ $now | Quote }}
{{ end }}
{{ with .spec.initContainers }}
initContainerStatuses:
{{ range . }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  ready: true
  restartCount: 0
  state:
    terminated:
      exitCode: 0
      reason: Completed
      startedAt: {{ $now | Quote }}
      finishedAt: {{ $now | Quote }}
{{ end }}
{{ end }}
containerStatuses:
{{ range .spec.containers }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  ready: true
  started: true
  restartCount: 0
  state:
    running:
      startedAt: {{ $now | Quote }}
{{ end }}
`;

/** The KWOK config file: our Stage documents, one JSON document per YAML document. */
export function kwokStages(): string {
  return [
    stage("nvts-node-ready", "Node", {
      selector: {
        matchExpressions: [{ key: ".status.phase", operator: "NotIn", values: ["Running"] }],
      },
      next: { statusTemplate: NODE_READY_STATUS },
    }),
    stage("nvts-pod-running", "Pod", {
      selector: {
        matchExpressions: [
          { key: ".metadata.deletionTimestamp", operator: "DoesNotExist" },
          { key: ".status.podIP", operator: "DoesNotExist" },
        ],
      },
      next: { statusTemplate: POD_RUNNING_STATUS },
    }),
    // No kubelet will ever confirm the deletion: remove the object once it is marked deleted.
    stage("nvts-pod-delete", "Pod", {
      selector: {
        matchExpressions: [{ key: ".metadata.deletionTimestamp", operator: "Exists" }],
      },
      next: { delete: true },
    }),
  ].join("\n---\n") + "\n";
}

/** kwok command line: manage only annotated fake nodes, renew their leases, no kubelet server. */
export function kwokCmd(binDir: string, kubeconfig: string, configFile: string): string[] {
  return [
    `${binDir}/kwok`,
    `--kubeconfig=${kubeconfig}`,
    `--config=${configFile}`,
    "--manage-all-nodes=false",
    `--manage-nodes-with-annotation-selector=${FAKE_NODE_ANNOTATION}=fake`,
    "--manage-nodes-with-label-selector=",
    `--node-ip=${FAKE_NODE_IP}`,
    "--node-lease-duration-seconds=40",
    "--server-address=",
  ];
}
