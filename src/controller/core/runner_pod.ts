/**
 * Pure builders for the runner pod of a VirtualMachine (reference §5.3): its labels and
 * annotations (§1.2), spec (init container, runner container, volumes, affinity, tolerations,
 * probes), the resources it requests (D4: requests follow the VM's size, limits cover its maximum
 * plus QEMU overhead), and `runnerStatus`, the pod's state as the controller sees it.
 * Pure: no I/O, no clock (`nowMs` is a parameter), no randomness.
 * @module
 */
import {
  ANNOTATION_DEFAULT_CONTAINER,
  ANNOTATION_LAST_APPLIED,
  ANNOTATION_VM_OVERCOMMIT,
  ANNOTATION_VM_RESOURCES,
  ANNOTATION_VM_USAGE,
  APP_NAME_NEONVM,
  encodeVmOvercommitAnnotation,
  encodeVmResourcesAnnotation,
  encodeVmUsageAnnotation,
  LABEL_APP_NAME,
  LABEL_VM_NAME,
  RUNNER_CONTAINER_NAME,
  vmResourcesFromSpec,
  vmUsageFromSpec,
} from "../../api/annotations.ts";
import { formatBinarySi, formatMilliCpu } from "../../api/quantity.ts";
import { RUNNER_ENV_POD_NAME, RUNNER_FLAGS, RUNNER_PATH_READY } from "../../api/runner_api.ts";
import {
  type CpuScalingMode,
  NEONVM_API_VERSION,
  type VirtualMachine,
} from "../../api/virtualmachine.ts";

/** Controller-wide settings that shape runner pods (from flags). */
export interface RunnerPodSettings {
  /** Runner image when the VM does not set `spec.runnerImage`. */
  readonly runnerImage: string;
  /** Command that starts the runner inside the runner image; flags are appended. */
  readonly runnerCommand: readonly string[];
  /** Extra runner flags appended after the reference's (e.g. `-accel=tcg`). */
  readonly runnerExtraArgs: readonly string[];
  /** `--disable-runner-cgroup`: pass `-skip-cgroup-management`, no cgroupfs mount. */
  readonly disableRunnerCgroup: boolean;
  /** `--use-virtio-console`. */
  readonly useVirtioConsole: boolean;
  /** `--qemu-disk-cache-settings`. */
  readonly qemuDiskCacheSettings: string;
  /** `--memhp-auto-movable-ratio` (the VM's `guest.memhpAutoMovableRatio` wins). */
  readonly memhpAutoMovableRatio: string;
  /** CPU the runner and QEMU need beyond the guest, in MilliCPU. */
  readonly overheadMilliCpu: number;
  /** Memory the runner and QEMU need beyond the guest, in bytes. */
  readonly overheadMemBytes: number;
  /** Run the runner container privileged (some hosts need it for tap/KVM devices). */
  readonly runnerPrivileged: boolean;
  /** Capabilities added to the runner container (reference: NET_ADMIN, SYS_ADMIN, SYS_RESOURCE). */
  readonly runnerCapabilities: readonly string[];
  /** Add the reference's device-plugin limits (`neonvm/vhost-net`, `neonvm/kvm`). */
  readonly devicePluginResources: boolean;
}

/** The encoded `-vmspec` / `-vmstatus` arguments (gzip + base64, computed by io). */
export interface RunnerArgs {
  /** gzip+base64 of the wire spec JSON. */
  readonly vmSpec: string;
  /** gzip+base64 of the wire status JSON. */
  readonly vmStatus: string;
}

/** Requests of the runner container in integer units. */
export interface RunnerSize {
  /** CPU in MilliCPU. */
  readonly milliCpu: number;
  /** Memory in bytes. */
  readonly memBytes: number;
}

/** A Kubernetes JSON object (the pod is built as plain data). */
export type JsonObject = { [k: string]: unknown };

/** The runner pod as written to the API server. */
export type RunnerPod = {
  /** Pod apiVersion. */
  readonly apiVersion: "v1";
  /** Pod kind. */
  readonly kind: "Pod";
  /** Pod metadata. */
  readonly metadata: {
    name: string;
    namespace: string;
    labels: Record<string, string>;
    annotations: Record<string, string>;
    ownerReferences: {
      apiVersion: string;
      kind: string;
      name: string;
      uid: string;
      controller: boolean;
      blockOwnerDeletion: boolean;
    }[];
  };
  /** Pod spec. */
  readonly spec: JsonObject & { containers: (JsonObject & { name: string })[] };
};

/** Labels the runner pod must carry: the VM's plus the app and VM-name labels. */
export function expectedPodLabels(vm: VirtualMachine): Record<string, string> {
  return {
    ...vm.metadata.labels,
    [LABEL_APP_NAME]: APP_NAME_NEONVM,
    [LABEL_VM_NAME]: vm.metadata.name ?? "",
  };
}

/** Annotations the runner pod must carry: the VM's (minus last-applied) plus §1.2's. */
export function expectedPodAnnotations(vm: VirtualMachine): Record<string, string> {
  const out: Record<string, string> = { ...vm.metadata.annotations };
  delete out[ANNOTATION_LAST_APPLIED];
  out[ANNOTATION_DEFAULT_CONTAINER] = RUNNER_CONTAINER_NAME;
  out[ANNOTATION_VM_USAGE] = encodeVmUsageAnnotation(vmUsageFromSpec(vm.spec));
  out[ANNOTATION_VM_RESOURCES] = encodeVmResourcesAnnotation(vmResourcesFromSpec(vm.spec));
  if (vm.spec.overcommit !== undefined) {
    out[ANNOTATION_VM_OVERCOMMIT] = encodeVmOvercommitAnnotation(vm.spec.overcommit);
  }
  return out;
}

/**
 * Requests of the runner container (D4): the VM's size in use plus overhead. Why: kube-scheduler,
 * kubelet and cluster-autoscaler then see what the VM really uses; the reference instead keeps
 * static requests and patches cluster-autoscaler.
 */
export function runnerRequests(vm: VirtualMachine, s: RunnerPodSettings): RunnerSize {
  const g = vm.spec.guest;
  return {
    milliCpu: g.cpus.use + s.overheadMilliCpu,
    memBytes: g.memorySlots.use * g.memorySlotSize + s.overheadMemBytes,
  };
}

/** Limits of the runner container: the VM's maximum plus overhead (never resized). */
export function runnerLimits(vm: VirtualMachine, s: RunnerPodSettings): RunnerSize {
  const g = vm.spec.guest;
  // QEMU gets ceil(max) vCPUs; a fractional maximum still needs whole host CPUs of headroom.
  const maxVcpus = Math.ceil(g.cpus.max / 1000) * 1000;
  return {
    milliCpu: maxVcpus + s.overheadMilliCpu,
    memBytes: g.memorySlots.max * g.memorySlotSize + s.overheadMemBytes,
  };
}

function resourcesOf(vm: VirtualMachine, s: RunnerPodSettings): JsonObject {
  const req = runnerRequests(vm, s);
  const lim = runnerLimits(vm, s);
  const userReq = { ...vm.spec.podResources?.requests };
  const userLim = { ...vm.spec.podResources?.limits };
  // CPU and memory are ours (they follow the VM's size); other resources come from podResources.
  for (const r of [userReq, userLim]) {
    delete r.cpu;
    delete r.memory;
  }
  const limits: JsonObject = {
    ...userLim,
    cpu: formatMilliCpu(lim.milliCpu),
    memory: formatBinarySi(lim.memBytes),
  };
  if (s.devicePluginResources) {
    limits["neonvm/vhost-net"] = "1";
    if (vm.spec.enableAcceleration) limits["neonvm/kvm"] = "1";
  }
  return {
    requests: {
      ...userReq,
      cpu: formatMilliCpu(req.milliCpu),
      memory: formatBinarySi(req.memBytes),
    },
    limits,
  };
}

/** The runner's command line: the runtime command plus the reference's flags. */
export function runnerCommand(
  vm: VirtualMachine,
  args: RunnerArgs,
  s: RunnerPodSettings,
  mode: CpuScalingMode,
): string[] {
  const f = RUNNER_FLAGS;
  const cmd = [...s.runnerCommand];
  if (s.disableRunnerCgroup) cmd.push(`-${f.skipCgroupManagement}`);
  if (s.useVirtioConsole) cmd.push(`-${f.useVirtioConsole}`);
  cmd.push(
    `-${f.qemuDiskCacheSettings}`,
    s.qemuDiskCacheSettings,
    `-${f.memhpAutoMovableRatio}`,
    vm.spec.guest.memhpAutoMovableRatio ?? s.memhpAutoMovableRatio,
    `-${f.vmSpec}`,
    args.vmSpec,
    `-${f.vmStatus}`,
    args.vmStatus,
    `-${f.cpuScalingMode}`,
    mode,
  );
  if (vm.spec.guest.kernelImage !== undefined) cmd.push(`-${f.kernelPath}=/vm/images/vmlinuz`);
  if (vm.spec.guest.appendKernelCmdline !== undefined) {
    cmd.push(`-${f.appendKernelCmdline}=${vm.spec.guest.appendKernelCmdline}`);
  }
  cmd.push(...s.runnerExtraArgs);
  return cmd;
}

function affinityOf(vm: VirtualMachine): JsonObject {
  const base = structuredClone(vm.spec.affinity ?? {}) as JsonObject;
  const exprs: JsonObject[] = [{ key: "kubernetes.io/os", operator: "In", values: ["linux"] }];
  if (vm.spec.targetArchitecture !== undefined) {
    exprs.push({ key: "kubernetes.io/arch", operator: "In", values: [vm.spec.targetArchitecture] });
  }
  const nodeAffinity = (base.nodeAffinity ?? {}) as JsonObject;
  const required =
    (nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution ?? {}) as JsonObject;
  const terms = Array.isArray(required.nodeSelectorTerms)
    ? required.nodeSelectorTerms as JsonObject[]
    : [];
  // Every term must also match os/arch (terms are ORed, expressions within a term ANDed).
  const newTerms = terms.length === 0 ? [{ matchExpressions: exprs }] : terms.map((t) => ({
    ...t,
    matchExpressions: [
      ...(Array.isArray(t.matchExpressions) ? t.matchExpressions : []),
      ...exprs,
    ],
  }));
  return {
    ...base,
    nodeAffinity: {
      ...nodeAffinity,
      requiredDuringSchedulingIgnoredDuringExecution: { ...required, nodeSelectorTerms: newTerms },
    },
  };
}

function volumesOf(vm: VirtualMachine, s: RunnerPodSettings): {
  volumes: JsonObject[];
  mounts: JsonObject[];
} {
  const volumes: JsonObject[] = [{ name: "virtualmachineimages", emptyDir: {} }];
  const mounts: JsonObject[] = [{ name: "virtualmachineimages", mountPath: "/vm/images" }];
  if (!s.disableRunnerCgroup) {
    volumes.push({
      name: "sysfscgroup",
      hostPath: { path: "/sys/fs/cgroup", type: "Directory" },
    });
    mounts.push({ name: "sysfscgroup", mountPath: "/sys/fs/cgroup", mountPropagation: "None" });
  }
  const swap = vm.spec.guest.settings?.swap;
  if (swap !== undefined) {
    volumes.push({ name: "swapdisk", emptyDir: { sizeLimit: formatBinarySi(swap) } });
    mounts.push({ name: "swapdisk", mountPath: "/vm/mounts/swapdisk" });
  }
  for (const d of vm.spec.disks ?? []) {
    const mountPath = `/vm/mounts${d.mountPath}`;
    if (d.configMap) {
      volumes.push({ name: d.name, configMap: d.configMap });
    } else if (d.secret) {
      volumes.push({ name: d.name, secret: d.secret });
    } else if (d.emptyDisk) {
      volumes.push({ name: d.name, emptyDir: { sizeLimit: formatBinarySi(d.emptyDisk.size) } });
    } else {
      continue; // tmpfs disks live in guest memory and need no pod volume.
    }
    mounts.push({ name: d.name, mountPath });
  }
  return { volumes, mounts };
}

/** Builds the runner pod for `vm` named `podName` (§5.3). */
export function buildRunnerPod(
  vm: VirtualMachine,
  podName: string,
  args: RunnerArgs,
  s: RunnerPodSettings,
  mode: CpuScalingMode,
): RunnerPod {
  const spec = vm.spec;
  const { volumes, mounts } = volumesOf(vm, s);
  const initContainers: JsonObject[] = [{
    name: "init",
    image: spec.guest.rootDisk.image,
    imagePullPolicy: spec.guest.rootDisk.imagePullPolicy,
    command: [
      "sh",
      "-c",
      "mv /disk.qcow2 /vm/images/rootdisk.qcow2 && chown 36:34 /vm/images/rootdisk.qcow2 && sysctl -w net.ipv4.ip_forward=1",
    ],
    securityContext: { privileged: true },
    volumeMounts: [{ name: "virtualmachineimages", mountPath: "/vm/images" }],
  }];
  if (spec.guest.kernelImage !== undefined) {
    initContainers.push({
      name: "init-kernel",
      image: spec.guest.kernelImage,
      imagePullPolicy: spec.guest.rootDisk.imagePullPolicy,
      command: ["cp", "/vmlinuz", "/vm/images/vmlinuz"],
      securityContext: { runAsUser: 36, runAsGroup: 34 },
      volumeMounts: [{ name: "virtualmachineimages", mountPath: "/vm/images" }],
    });
  }
  initContainers.push(...(spec.extraInitContainers ?? []));
  const ports: JsonObject[] = [
    { containerPort: spec.qmp, name: "qmp" },
    { containerPort: spec.qmpManual, name: "qmp-manual" },
    { containerPort: spec.runnerPort, name: "runner" },
    ...(spec.guest.ports ?? []).map((p) => ({
      containerPort: p.port,
      protocol: p.protocol,
      ...(p.name !== undefined ? { name: p.name } : {}),
    })),
  ];
  const runner: JsonObject & { name: string } = {
    name: RUNNER_CONTAINER_NAME,
    image: spec.runnerImage ?? s.runnerImage,
    imagePullPolicy: "IfNotPresent",
    command: runnerCommand(vm, args, s, mode),
    env: [{ name: RUNNER_ENV_POD_NAME, valueFrom: { fieldRef: { fieldPath: "metadata.name" } } }],
    ports,
    resources: resourcesOf(vm, s),
    // Requests change in place (D4); neither resource needs a restart.
    resizePolicy: [
      { resourceName: "cpu", restartPolicy: "NotRequired" },
      { resourceName: "memory", restartPolicy: "NotRequired" },
    ],
    readinessProbe: {
      httpGet: { path: RUNNER_PATH_READY, port: spec.runnerPort },
      initialDelaySeconds: 5,
      periodSeconds: 5,
      failureThreshold: 3,
    },
    securityContext: s.runnerPrivileged
      ? { privileged: true }
      : { privileged: false, capabilities: { add: [...s.runnerCapabilities] } },
    volumeMounts: mounts,
  };
  const podSpec: RunnerPod["spec"] = {
    restartPolicy: "Never",
    automountServiceAccountToken: false,
    terminationGracePeriodSeconds: spec.terminationGracePeriodSeconds,
    tolerations: [
      ...(spec.tolerations ?? []),
      {
        key: "node.kubernetes.io/not-ready",
        operator: "Exists",
        effect: "NoExecute",
        tolerationSeconds: 30,
      },
      {
        key: "node.kubernetes.io/unreachable",
        operator: "Exists",
        effect: "NoExecute",
        tolerationSeconds: 30,
      },
    ],
    affinity: affinityOf(vm),
    initContainers,
    containers: [runner],
    volumes,
  };
  if (spec.service_links !== undefined) podSpec.enableServiceLinks = spec.service_links;
  if (spec.nodeSelector !== undefined) podSpec.nodeSelector = spec.nodeSelector;
  if (spec.imagePullSecrets !== undefined) podSpec.imagePullSecrets = spec.imagePullSecrets;
  if (spec.serviceAccountName !== undefined) podSpec.serviceAccountName = spec.serviceAccountName;
  if (spec.schedulerName !== undefined) podSpec.schedulerName = spec.schedulerName;
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: podName,
      namespace: vm.metadata.namespace ?? "default",
      labels: expectedPodLabels(vm),
      annotations: expectedPodAnnotations(vm),
      ownerReferences: [{
        apiVersion: NEONVM_API_VERSION,
        kind: "VirtualMachine",
        name: vm.metadata.name ?? "",
        uid: vm.metadata.uid ?? "",
        controller: true,
        blockOwnerDeletion: true,
      }],
    },
    spec: podSpec,
  };
}

/** What the controller needs to know about a runner pod (io distils it from the Pod). */
export interface PodView {
  /** Pod name. */
  readonly name: string;
  /** Pod phase (`""` when unset). */
  readonly phase: string;
  /** deletionTimestamp in epoch ms, when terminating. */
  readonly deletionTimestampMs?: number | undefined;
  /** Pod IP. */
  readonly podIP?: string | undefined;
  /** Node the pod runs on. */
  readonly nodeName?: string | undefined;
  /** Whether the pod has any container statuses yet. */
  readonly hasContainerStatuses: boolean;
  /** Whether the runner container is Ready. */
  readonly runnerReady: boolean;
  /** Pod labels (undefined when the pod has none). */
  readonly labels?: Readonly<Record<string, string>> | undefined;
  /** Pod annotations (undefined when the pod has none). */
  readonly annotations?: Readonly<Record<string, string>> | undefined;
  /** Number of owner references. */
  readonly ownerReferenceCount: number;
  /** Names of the owners (for migration bookkeeping). */
  readonly ownerNames?: readonly string[] | undefined;
  /** Current requests of the runner container in the pod spec, when parseable. */
  readonly runnerRequests?: RunnerSize | undefined;
}

/** The runner's state as the reference computes it. */
export type RunnerStatus = "Pending" | "Running" | "Succeeded" | "Failed";

/** How long past its deletionTimestamp a terminating pod counts as Failed. */
export const POD_DELETION_FAILED_AFTER_MS = 5_000;

/** The reference's runner status of a pod (§5.2 "Runner status"). */
export function runnerStatus(pod: PodView, nowMs: number): RunnerStatus {
  if (
    pod.deletionTimestampMs !== undefined &&
    nowMs - pod.deletionTimestampMs > POD_DELETION_FAILED_AFTER_MS
  ) {
    return "Failed";
  }
  switch (pod.phase) {
    case "":
    case "Pending":
      return "Pending";
    case "Succeeded":
      return "Succeeded";
    case "Failed":
      return "Failed";
    case "Running":
      if (!pod.hasContainerStatuses) return "Pending";
      return pod.runnerReady ? "Running" : "Pending";
    default:
      return "Pending"; // "Unknown": the node is unreachable; wait for the taint eviction.
  }
}

/** The migration a target pod is built for (the fields the builder reads). */
export interface MigrationRef {
  /** Migration metadata. */
  readonly metadata: { readonly name?: string | undefined; readonly uid?: string | undefined };
  /** Migration spec. */
  readonly spec: {
    readonly preventMigrationToSameHost: boolean;
    readonly nodeSelector?: Readonly<Record<string, string>> | undefined;
  };
}

/**
 * Builds a migration target pod (§5.3 last point): the VM's runner pod with
 * `RECEIVE_MIGRATION=true`, owned by the migration (controller) and the VM (plain owner), with
 * anti-affinity to the VM's other runner pod when the migration forbids the same host.
 */
export function buildTargetPod(
  vm: VirtualMachine,
  migration: MigrationRef,
  podName: string,
  args: RunnerArgs,
  s: RunnerPodSettings,
  mode: CpuScalingMode,
): RunnerPod {
  const base = buildRunnerPod(vm, podName, args, s, mode);
  const runner = base.spec.containers[0]!;
  const env = Array.isArray(runner.env) ? runner.env : [];
  const containers = [{
    ...runner,
    env: [...env, { name: "RECEIVE_MIGRATION", value: "true" }],
  }];
  const affinity = { ...(base.spec.affinity as JsonObject) };
  if (migration.spec.preventMigrationToSameHost) {
    const anti = (affinity.podAntiAffinity ?? {}) as JsonObject;
    const required = Array.isArray(anti.requiredDuringSchedulingIgnoredDuringExecution)
      ? anti.requiredDuringSchedulingIgnoredDuringExecution
      : [];
    affinity.podAntiAffinity = {
      ...anti,
      requiredDuringSchedulingIgnoredDuringExecution: [...required, {
        labelSelector: { matchLabels: { [LABEL_VM_NAME]: vm.metadata.name ?? "" } },
        topologyKey: "kubernetes.io/hostname",
      }],
    };
  }
  const spec: RunnerPod["spec"] = { ...base.spec, containers, affinity };
  if (migration.spec.nodeSelector !== undefined) {
    spec.nodeSelector = {
      ...(base.spec.nodeSelector as Record<string, string> | undefined),
      ...migration.spec.nodeSelector,
    };
  }
  return {
    ...base,
    metadata: {
      ...base.metadata,
      ownerReferences: [
        {
          apiVersion: NEONVM_API_VERSION,
          kind: "VirtualMachineMigration",
          name: migration.metadata.name ?? "",
          uid: migration.metadata.uid ?? "",
          controller: true,
          blockOwnerDeletion: true,
        },
        { ...base.metadata.ownerReferences[0]!, controller: false },
      ],
    },
    spec,
  };
}
