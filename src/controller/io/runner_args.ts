/**
 * Encodes the runner's `-vmspec` / `-vmstatus` arguments as the reference does (wire JSON, gzip,
 * base64) with the shared encoder of `src/api/runner_api.ts`, so the runner decodes exactly what
 * the controller wrote. Only encoding.
 * @module
 */
import { encodeRunnerFlagJson } from "../../api/runner_api.ts";
import {
  encodeVirtualMachineSpec,
  encodeVirtualMachineStatus,
  type VirtualMachine,
} from "../../api/virtualmachine.ts";
import type { RunnerArgs } from "../core/runner_pod.ts";

/** The runner arguments for `vm`. */
export async function encodeRunnerArgs(vm: VirtualMachine): Promise<RunnerArgs> {
  return {
    vmSpec: await encodeRunnerFlagJson(encodeVirtualMachineSpec(vm.spec)),
    vmStatus: await encodeRunnerFlagJson(
      encodeVirtualMachineStatus(vm.status ?? { restartCount: 0 }),
    ),
  };
}
