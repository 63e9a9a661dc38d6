// Test fixtures for the controller core: a parsed VM and pod views.
import { type VirtualMachine, VirtualMachineSchema } from "../../api/virtualmachine.ts";
import type { PodView, RunnerPodSettings } from "./runner_pod.ts";
import type { ReconcileSettings } from "./reconcile.ts";
import { GiB, MiB } from "../../api/quantity.ts";

/** Runner settings used by tests. */
export const RUNNER: RunnerPodSettings = {
  runnerImage: "localhost/neonvm-ts/runtime:dev",
  runnerCommand: ["deno", "run", "--cached-only", "-A", "/app/src/runner/main.ts"],
  runnerExtraArgs: [],
  disableRunnerCgroup: true,
  useVirtioConsole: false,
  qemuDiskCacheSettings: "cache=none",
  memhpAutoMovableRatio: "301",
  overheadMilliCpu: 100,
  overheadMemBytes: 256 * MiB,
  runnerPrivileged: false,
  runnerCapabilities: ["NET_ADMIN", "SYS_ADMIN", "SYS_RESOURCE"],
  devicePluginResources: false,
};

/** Reconcile settings used by tests. */
export const SETTINGS: ReconcileSettings = {
  defaultCpuScalingMode: "QmpScaling",
  atMostOnePod: false,
  runner: RUNNER,
};

/** A parsed VM: 0.25..1 CPU, 1..4 slots of 1Gi, with finalizer and QmpScaling unless overridden. */
export function vmFixture(patch: {
  spec?: Record<string, unknown>;
  guest?: Record<string, unknown>;
  metadata?: Record<string, unknown>;
  status?: Record<string, unknown>;
} = {}): VirtualMachine {
  return VirtualMachineSchema.parse({
    apiVersion: "vm.neon.tech/v1",
    kind: "VirtualMachine",
    metadata: {
      name: "vm1",
      namespace: "default",
      uid: "uid-1",
      generation: 1,
      resourceVersion: "7",
      finalizers: ["vm.neon.tech/finalizer"],
      labels: { "autoscaling.neon.tech/enabled": "true" },
      ...patch.metadata,
    },
    spec: {
      cpuScalingMode: "QmpScaling",
      guest: {
        cpus: { min: "250m", max: 1, use: "250m" },
        memorySlots: { min: 1, max: 4, use: 1 },
        memorySlotSize: "1Gi",
        rootDisk: { image: "localhost/neonvm-ts/test-guest:dev" },
        ...patch.guest,
      },
      ...patch.spec,
    },
    ...(patch.status ? { status: patch.status } : {}),
  });
}

/** A pod view; `state` picks phase and readiness. */
export function podFixture(
  name: string,
  state: "Pending" | "Running" | "NotReady" | "Succeeded" | "Failed",
  extra: Partial<PodView> = {},
): PodView {
  const phase = state === "NotReady" ? "Running" : state;
  return {
    name,
    phase,
    hasContainerStatuses: state !== "Pending",
    runnerReady: state === "Running",
    podIP: state === "Pending" ? undefined : "10.0.0.5",
    nodeName: "node-1",
    labels: {
      "autoscaling.neon.tech/enabled": "true",
      "app.kubernetes.io/name": "NeonVM",
      "vm.neon.tech/name": "vm1",
    },
    annotations: {
      "kubectl.kubernetes.io/default-container": "neonvm-runner",
      "vm.neon.tech/usage": '{"cpu":"250m","memory":"1Gi"}',
      "vm.neon.tech/resources":
        '{"cpus":{"min":"250m","max":1,"use":"250m"},"memorySlots":{"min":1,"max":4,"use":1},"memorySlotSize":"1Gi"}',
    },
    ownerReferenceCount: 1,
    runnerRequests: { milliCpu: 350, memBytes: GiB + 256 * MiB },
    ...extra,
  };
}
