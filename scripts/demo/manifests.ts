/**
 * The demo's Kubernetes objects as plain JSON: the autoscaling Postgres VM and the load pod that
 * runs pgbench/psql against it, plus the SQL of the load phases. Pure: no I/O.
 * @module
 */

/** Namespace of the demo and of tests/e2e (the local controller watches only this one). */
export const DEMO_NAMESPACE = "neonvm-demo";
/** Image of the Postgres example guest (vm-examples/pg16). */
export const PG_GUEST_IMAGE = "docker.io/neonvm-ts/vm-pg16-demo:dev";

/** The guest kernel image (scripts/demo/images.ts): /vmlinuz, /initrd.img, busybox cp. */
export const GUEST_KERNEL_IMAGE = "localhost/neonvm-ts/demo-kernel:dev";

/** Options of the demo VM. */
export interface VmOptions {
  /** VM name. */
  name: string;
  /** Namespace (default {@linkcode DEMO_NAMESPACE}). */
  namespace?: string;
  /** Minimum vCPUs as a quantity (default "250m"). */
  cpuMin?: string | number;
  /** Maximum vCPUs (default 2). */
  cpuMax?: string | number;
  /** Minimum memory slots of 1 GiB (default 1). */
  memMinSlots?: number;
  /** Maximum memory slots of 1 GiB (default 8). */
  memMaxSlots?: number;
  /** Guest disk image (default {@linkcode PG_GUEST_IMAGE}). */
  image?: string;
  /** Kernel image (default {@linkcode GUEST_KERNEL_IMAGE}; null: the runtime image's kernel). */
  kernelImage?: string | null;
  /** Per-VM scaling overrides (`autoscaling.neon.tech/config` annotation), if any. */
  scalingConfig?: Record<string, number | boolean>;
  /** Extra labels. */
  labels?: Record<string, string>;
}

/**
 * The autoscaling Postgres VM: label `autoscaling.neon.tech/enabled`, scheduled by
 * autoscale-scheduler, 0.25–2 vCPU and 1–8 GiB by default. CPU scaling is SysfsScaling: under TCG
 * (no KVM here) QEMU 7.2 cannot re-plug a vCPU it unplugged, so vCPUs are onlined and offlined in
 * the guest instead of hot-(un)plugged.
 */
export function demoVm(o: VmOptions): Record<string, unknown> {
  const kernel = o.kernelImage === undefined ? GUEST_KERNEL_IMAGE : o.kernelImage;
  return {
    apiVersion: "vm.neon.tech/v1",
    kind: "VirtualMachine",
    metadata: {
      name: o.name,
      namespace: o.namespace ?? DEMO_NAMESPACE,
      labels: { "autoscaling.neon.tech/enabled": "true", ...(o.labels ?? {}) },
      ...(o.scalingConfig
        ? { annotations: { "autoscaling.neon.tech/config": JSON.stringify(o.scalingConfig) } }
        : {}),
    },
    spec: {
      schedulerName: "autoscale-scheduler",
      cpuScalingMode: "SysfsScaling",
      terminationGracePeriodSeconds: 10,
      enableSSH: false,
      ...(kernel === null ? {} : {
        // The runner boots /vm/images/vmlinuz with the initrd.img beside it.
        extraInitContainers: [{
          name: "init-initrd",
          image: kernel,
          imagePullPolicy: "Never",
          command: ["cp", "/initrd.img", "/vm/images/initrd.img"],
          volumeMounts: [{ name: "virtualmachineimages", mountPath: "/vm/images" }],
        }],
      }),
      guest: {
        ...(kernel === null ? {} : { kernelImage: kernel }),
        cpus: { min: o.cpuMin ?? "250m", max: o.cpuMax ?? 2, use: o.cpuMin ?? "250m" },
        memorySlots: { min: o.memMinSlots ?? 1, max: o.memMaxSlots ?? 8, use: o.memMinSlots ?? 1 },
        memorySlotSize: "1Gi",
        rootDisk: { image: o.image ?? PG_GUEST_IMAGE, imagePullPolicy: "Never", size: "2Gi" },
        // The runner forwards only these from the pod IP into the guest: Postgres, the metrics
        // exporter (agent, demo) and the vm-monitor (agent).
        ports: [
          { name: "postgres", port: 5432, protocol: "TCP" },
          { name: "metrics", port: 9100, protocol: "TCP" },
          { name: "monitor", port: 10301, protocol: "TCP" },
        ],
      },
    },
  };
}

/** The load pod: sleeps; the demo runs pgbench and psql in it with `kubectl exec`. */
export function loadPod(
  name: string,
  image: string,
  namespace = DEMO_NAMESPACE,
): Record<string, unknown> {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace, labels: { app: "neonvm-demo-load" } },
    spec: {
      terminationGracePeriodSeconds: 1,
      containers: [{
        name: "load",
        image,
        imagePullPolicy: "Never",
        command: ["sleep", "infinity"],
        env: [{ name: "PGPASSWORD", value: "demo" }, { name: "PGCONNECT_TIMEOUT", value: "10" }],
        resources: { requests: { cpu: "0", memory: "32Mi" } },
      }],
    },
  };
}

/**
 * Scaling overrides for guests emulated by TCG (no KVM). Why (measured in the guests with
 * tests/e2e/_guest_shell.ts and vm-examples/pg16/probe.ts): a lone idle guest on a quiet host has a
 * load average of 0.15–0.2, but on the cluster an idle demo VM kept 1.5–2.4 because (1) the
 * vm-monitor sampled its cgroup every 100 ms, 10 % of a vCPU on a quiet host and 20–40 % on a busy
 * one (the demo spec now samples every 500 ms), and (2) the agent scales in compute units of
 * 0.25 vCPU + 1 GiB, so each CPU step also plugs or unplugs 1 GiB of virtio-mem, which under TCG
 * keeps a guest kworker busy for 10–20 s (25–60 % of a vCPU): that raises the load average, which
 * raises the goal, and an idle VM oscillated between 4 and 5 GiB every ~16 s (dmesg `virtio_mem:
 * requested size` flipping). Under KVM that work is far cheaper. With the default target of 0.9
 * the loop can start from any small load; 1.9 (the agent accepts < 2) needs a load of 0.71 for a
 * second compute unit, while pgbench (load ~6) still drives the VM to its 2 vCPU maximum.
 */
export const TCG_SCALING_CONFIG = { loadAverageFractionTarget: 1.9 } as const;

/** libpq connection string to the VM's Postgres at `ip`. */
export function pgConn(ip: string): string {
  return `host=${ip} port=5432 user=demo dbname=postgres`;
}

/**
 * A query that builds one string of `mib` MiB in its backend with `repeat()` (memcpy, hardly any
 * CPU even under TCG, so it raises memory and not the load average) and holds it for `holdSec`
 * seconds. Postgres caps one string at 1 GiB: run several for more.
 */
export function memoryPressureSql(mib: number, holdSec: number): string {
  return `SELECT length(repeat(repeat('x', 1048576), ${Math.max(1, Math.round(mib))})), ` +
    `pg_sleep(${holdSec})`;
}
