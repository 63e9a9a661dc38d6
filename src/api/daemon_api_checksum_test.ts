/**
 * Tests of BLAKE2b-256 (known vectors, computed with Python's hashlib) and the file checksum.
 * @module
 */
import assert from "node:assert/strict";
import { blake2b, filesChecksum } from "./daemon_api_checksum.ts";

const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
const enc = new TextEncoder();

Deno.test("BLAKE2b known answers", () => {
  assert.equal(
    hex(blake2b(new Uint8Array(0), 32)),
    "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8",
  );
  assert.equal(
    hex(blake2b(enc.encode("abc"), 64)),
    "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d17d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923",
  );
  const long = new Uint8Array(300).map((_, i) => i & 0xff);
  assert.equal(hex(blake2b(long, 32)), EXPECTED_300);
});

// hashlib.blake2b(bytes(i & 0xff for i in range(300)), digest_size=32).hexdigest()
const EXPECTED_300 = "3a486e3fe3ee414853000269ac020030aeef748cb05cd62ba85939ec298ef25c";

Deno.test("filesChecksum is order-independent and content-sensitive", () => {
  const a = filesChecksum({ "b.txt": enc.encode("2"), "a.txt": enc.encode("1") });
  const b = filesChecksum({ "a.txt": enc.encode("1"), "b.txt": enc.encode("2") });
  assert.equal(a, b);
  assert.notEqual(a, filesChecksum({ "a.txt": enc.encode("1"), "b.txt": enc.encode("3") }));
  assert.ok(!a.endsWith("="));
  assert.equal(a, "O4X/gqjsEh9BVjY4CXJ32PXFFXHdIsdquJdUg6YOdMA");
});
