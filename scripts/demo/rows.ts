/**
 * Turns VirtualMachines, pods and nodes into the rows of the status table. Node reservation is
 * counted as the scheduler counts it (reference §4.2): VM pods by their approved resources (their
 * usage while none is approved), other pods by their requests. Pure: no I/O.
 * @module
 */
import {
  ANNOTATION_RESOURCES_APPROVED,
  parseResourcesAnnotation,
} from "../../src/api/annotations.ts";
import { parseBytes, parseMilliCpu } from "../../src/api/quantity.ts";
import { cpuUseMilli, memoryUseBytes, type VirtualMachine } from "../../src/api/virtualmachine.ts";
import type { Node, Pod } from "../../src/lib/k8s/core_types.ts";
import type { NodeRow, VmRow } from "./render.ts";

function approvedOf(annotations: Record<string, string> | undefined) {
  const text = annotations?.[ANNOTATION_RESOURCES_APPROVED];
  if (text === undefined) return undefined;
  const r = parseResourcesAnnotation(text, ANNOTATION_RESOURCES_APPROVED);
  return r.ok ? r.value : undefined;
}

/** One row per VM, sorted by namespace/name. */
export function vmRows(vms: readonly VirtualMachine[]): VmRow[] {
  return vms.map((vm) => {
    const approved = approvedOf(vm.metadata.annotations);
    return {
      vm: `${vm.metadata.namespace ?? ""}/${vm.metadata.name ?? ""}`,
      phase: vm.status?.phase ?? "-",
      node: vm.status?.node ?? "",
      cpuUseMilli: cpuUseMilli(vm),
      cpuStatusMilli: vm.status?.cpus,
      cpuApprovedMilli: approved?.vCPUs,
      memUseBytes: memoryUseBytes(vm),
      memStatusBytes: vm.status?.memorySize,
      memApprovedBytes: approved?.mem,
    };
  }).sort((a, b) => a.vm.localeCompare(b.vm));
}

function isTerminal(p: Pod): boolean {
  return p.status?.phase === "Succeeded" || p.status?.phase === "Failed";
}

/** One row per node with the sum of what its pods reserve. */
export function nodeRows(
  nodes: readonly Node[],
  pods: readonly Pod[],
  vms: readonly VirtualMachine[],
): NodeRow[] {
  const vmByPod = new Map<string, VirtualMachine>();
  for (const vm of vms) {
    if (vm.status?.podName) vmByPod.set(`${vm.metadata.namespace}/${vm.status.podName}`, vm);
  }
  return nodes.map((n) => {
    const name = n.metadata.name ?? "";
    let cpu = 0;
    let mem = 0;
    for (const p of pods) {
      if (p.spec.nodeName !== name || isTerminal(p)) continue;
      const vm = vmByPod.get(`${p.metadata.namespace}/${p.metadata.name}`);
      if (vm) {
        const approved = approvedOf(p.metadata.annotations) ?? approvedOf(vm.metadata.annotations);
        cpu += approved?.vCPUs ?? cpuUseMilli(vm);
        mem += approved?.mem ?? memoryUseBytes(vm);
        continue;
      }
      for (const c of p.spec.containers) {
        const req = c.resources?.requests ?? {};
        cpu += req.cpu === undefined ? 0 : parseMilliCpu(req.cpu) ?? 0;
        mem += req.memory === undefined ? 0 : parseBytes(req.memory) ?? 0;
      }
    }
    const alloc = n.status?.allocatable ?? {};
    return {
      node: name,
      cpuReservedMilli: cpu,
      cpuTotalMilli: alloc.cpu === undefined ? 0 : parseMilliCpu(alloc.cpu) ?? 0,
      memReservedBytes: mem,
      memTotalBytes: alloc.memory === undefined ? 0 : parseBytes(alloc.memory) ?? 0,
    };
  }).sort((a, b) => a.node.localeCompare(b.node));
}
