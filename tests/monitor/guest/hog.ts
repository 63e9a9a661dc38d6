/**
 * Memory hog for the guest cgroup test: reads lines "<MiB>" on stdin, holds that many MiB of
 * touched anonymous memory, and answers "held <MiB>" once the pages are written. Test support only.
 * @module
 */
let held: Uint8Array[] = [];
const enc = new TextEncoder();
let buf = "";
for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
  buf += chunk;
  let nl;
  while ((nl = buf.indexOf("\n")) >= 0) {
    const mib = Number(buf.slice(0, nl));
    buf = buf.slice(nl + 1);
    held = [];
    for (let i = 0; i < mib; i++) {
      const a = new Uint8Array(1 << 20);
      a.fill(1 + (i % 250));
      held.push(a);
    }
    await Deno.stdout.write(enc.encode(`held ${mib}\n`));
  }
}
