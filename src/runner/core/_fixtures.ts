/**
 * Shared test fixture (imported by tests only): a parsed VM spec built from wire JSON, as the runner receives it.
 * @module
 */
import { type VirtualMachineSpec, VirtualMachineSpecSchema } from "../../api/virtualmachine.ts";

/** Parses a spec from wire JSON, with a small default guest merged in. */
export function specFixture(
  over: Record<string, unknown> = {},
  guest: Record<string, unknown> = {},
): VirtualMachineSpec {
  return VirtualMachineSpecSchema.parse({
    guest: {
      cpus: { min: 1, max: 4, use: 2 },
      memorySlotSize: "1Gi",
      memorySlots: { min: 1, max: 4, use: 2 },
      rootDisk: { image: "localhost/neonvm-ts/test-guest:dev" },
      ...guest,
    },
    ...over,
  });
}
