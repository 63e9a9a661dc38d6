/**
 * Tests for the docker-archive JSON builders and the apt mirror parser.
 * @module
 */
import assert from "node:assert/strict";
import { imageConfigJson, manifestJson } from "./docker_archive.ts";
import { parseMirror } from "./rootfs.ts";

const layers = [
  { path: "/a.tar", sha256: "a".repeat(64), comment: "base" },
  { path: "/b.tar", sha256: "b".repeat(64), comment: "app" },
];

Deno.test("image config lists diff_ids in layer order and is deterministic", () => {
  const s = { env: ["A=1"], cmd: ["x"], workingDir: "/app" };
  const c = JSON.parse(imageConfigJson(layers, s));
  assert.deepEqual(c.rootfs.diff_ids, [`sha256:${"a".repeat(64)}`, `sha256:${"b".repeat(64)}`]);
  assert.equal(c.config.WorkingDir, "/app");
  assert.equal(c.history.length, 2);
  assert.equal(imageConfigJson(layers, s), imageConfigJson(layers, s));
  assert.notEqual(imageConfigJson(layers, s), imageConfigJson([...layers].reverse(), s));
});

Deno.test("manifest names config, tags and layer paths", () => {
  const m = JSON.parse(manifestJson("c".repeat(64), layers, ["localhost/x:dev"]));
  assert.equal(m.length, 1);
  assert.equal(m[0].Config, `${"c".repeat(64)}.json`);
  assert.deepEqual(m[0].RepoTags, ["localhost/x:dev"]);
  assert.deepEqual(m[0].Layers, [`${"a".repeat(64)}/layer.tar`, `${"b".repeat(64)}/layer.tar`]);
});

Deno.test("parseMirror reads deb822 and one-line sources and skips security", () => {
  const deb822 =
    "Types: deb\nURIs: http://deb.debian.org/debian-security\n\nURIs: http://m.example/debian\n";
  assert.equal(parseMirror([deb822]), "http://m.example/debian");
  assert.equal(
    parseMirror(["# c\ndeb [arch=amd64] http://x.example/debian bookworm main\n"]),
    "http://x.example/debian",
  );
  assert.equal(
    parseMirror(["deb https://packages.cloud.google.com/apt cloud-sdk main"]),
    undefined,
  );
});
