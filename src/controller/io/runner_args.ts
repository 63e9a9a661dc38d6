/**
 * Encodes the runner's `-vmspec` / `-vmstatus` arguments as the reference does: the wire JSON,
 * gzip-compressed, then standard base64. Only encoding; the runner decodes.
 * @module
 */
import {
  encodeVirtualMachineSpec,
  encodeVirtualMachineStatus,
  type VirtualMachine,
} from "../../api/virtualmachine.ts";
import type { RunnerArgs } from "../core/runner_pod.ts";

/** gzip + base64 of a UTF-8 string. */
export async function gzipBase64(text: string): Promise<string> {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
  const bytes = new Uint8Array(await new Response(stream).arrayBuffer());
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

/** The runner arguments for `vm`. */
export async function encodeRunnerArgs(vm: VirtualMachine): Promise<RunnerArgs> {
  return {
    vmSpec: await gzipBase64(JSON.stringify(encodeVirtualMachineSpec(vm.spec))),
    vmStatus: await gzipBase64(
      JSON.stringify(encodeVirtualMachineStatus(vm.status ?? { restartCount: 0 })),
    ),
  };
}
