import assert from "node:assert/strict";
import fc from "fast-check";
import { ParseError } from "../lib/errors.ts";
import { parseOrThrow, parseResult } from "./_parse.ts";
import {
  encodeVirtualMachineMigration,
  MIGRATION_PORT,
  VirtualMachineMigrationSchema,
} from "./virtualmachine_migration.ts";

// As stored after CRD defaulting (keys sorted), written from reference §2.3.
const STORED = [
  '{"apiVersion":"vm.neon.tech/v1","kind":"VirtualMachineMigration",',
  '"metadata":{"labels":{"autoscaling.neon.tech/created-by-scheduler":"true"},',
  '"name":"schedplugin-example-abc","namespace":"default"},',
  '"spec":{"allowPostCopy":false,"autoConverge":true,"completionTimeout":3600,',
  '"incremental":true,"maxBandwidth":"1Gi","preventMigrationToSameHost":true,',
  '"vmName":"example"},',
  '"status":{"info":{"compression":{},"downtimeMs":12,"ram":{"remaining":0,',
  '"total":2147483648,"transferred":123456},"setupTimeMs":3,"status":"completed",',
  '"totalTimeMs":4567},"phase":"Succeeded","sourcePodIP":"10.214.0.7",',
  '"sourcePodName":"example-abc","targetPodIP":"10.214.1.9","targetPodName":"example-def"}}',
].join("");

Deno.test("a stored migration round-trips byte for byte", () => {
  const m = parseOrThrow(VirtualMachineMigrationSchema, JSON.parse(STORED), "migration");
  assert.equal(m.spec.maxBandwidth, 1024 ** 3);
  assert.equal(m.status?.info?.ram?.total, 2147483648);
  assert.equal(JSON.stringify(encodeVirtualMachineMigration(m)), STORED);
  assert.equal(MIGRATION_PORT, 20187);
});

Deno.test("migration defaults follow §2.3", () => {
  const m = parseOrThrow(VirtualMachineMigrationSchema, {
    apiVersion: "vm.neon.tech/v1",
    kind: "VirtualMachineMigration",
    metadata: { name: "x" },
    spec: { vmName: "vm" },
  }, "migration");
  assert.deepEqual(m.spec, {
    vmName: "vm",
    preventMigrationToSameHost: true,
    completionTimeout: 3600,
    incremental: true,
    allowPostCopy: false,
    autoConverge: true,
    maxBandwidth: 1024 ** 3,
  });
});

Deno.test("bad migrations name the path; the parser never throws", () => {
  const r = parseResult(VirtualMachineMigrationSchema, {
    apiVersion: "vm.neon.tech/v1",
    kind: "VirtualMachineMigration",
    metadata: {},
    spec: { vmName: "", maxBandwidth: "fast" },
    status: { phase: "Sideways" },
  }, "migration");
  assert.ok(!r.ok);
  assert.ok(r.error instanceof ParseError);
  for (const p of ["spec.vmName", "spec.maxBandwidth", "status.phase"]) {
    assert.ok(r.error.paths.includes(p), p);
  }
  fc.assert(
    fc.property(fc.anything(), (x) => {
      const res = parseResult(VirtualMachineMigrationSchema, x, "m");
      if (!res.ok) assert.ok(res.error.paths.length > 0);
    }),
    { numRuns: 200 },
  );
});
