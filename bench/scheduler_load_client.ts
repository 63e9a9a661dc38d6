/**
 * Load client for bench/scheduler_bench.ts, run as its own process so its CPU use is separate
 * from (and measurable beside) the scheduler's: raw TCP, HTTP/1.1 keep-alive, one request in
 * flight per connection (agents do not pipeline), every request pre-serialised to bytes before
 * the clock starts, responses parsed only as far as status line and `content-length`.
 *
 * Reads one job as JSON on stdin — `{host, port, path, bodies, concurrency, seconds, once,
 * ratePerSec}` — and writes one JSON result on stdout: sorted latencies (ms), wall seconds,
 * non-200 count, and the client's own CPU time. `ratePerSec` > 0 runs an open loop: request k is
 * due at `start + k / rate`; when its connection is still busy then, its latency counts from the
 * due time (queueing behind slow answers included, no coordinated omission), otherwise from when
 * the client's timer let it go. 0 runs a closed loop as fast as the connections allow.
 * Does not interpret answers.
 * @module
 */
import process from "node:process";

/** One load phase. */
export interface LoadJob {
  /** Server address. */
  host: string;
  /** Server port. */
  port: number;
  /** Request path. */
  path: string;
  /** POST bodies, used round-robin. */
  bodies: string[];
  /** Connections, each with one request in flight. */
  concurrency: number;
  /** Phase length. */
  seconds: number;
  /** Stop after each body was sent once. */
  once: boolean;
  /** Open-loop request rate; 0 = closed loop. */
  ratePerSec: number;
}

/** What a phase measured. */
export interface LoadResult {
  /** Sorted latencies in milliseconds. */
  latenciesMs: number[];
  /** Wall time of the phase. */
  seconds: number;
  /** Answers with a status other than 200. */
  errors: number;
  /** Client CPU time (user + system) during the phase, microseconds. */
  cpuUs: number;
}

const encoder = new TextEncoder();
const CRLFCRLF = [13, 10, 13, 10];

function requestBytes(job: LoadJob, body: string): Uint8Array {
  const b = encoder.encode(body);
  const head = encoder.encode(
    `POST ${job.path} HTTP/1.1\r\nhost: ${job.host}:${job.port}\r\n` +
      `content-type: application/json\r\ncontent-length: ${b.byteLength}\r\n\r\n`,
  );
  const out = new Uint8Array(head.byteLength + b.byteLength);
  out.set(head);
  out.set(b, head.byteLength);
  return out;
}

function indexOfHeaderEnd(buf: Uint8Array, len: number): number {
  outer: for (let i = 0; i + 3 < len; i++) {
    for (let j = 0; j < 4; j++) if (buf[i + j] !== CRLFCRLF[j]) continue outer;
    return i + 4;
  }
  return -1;
}

const decoder = new TextDecoder();

/** Parses status and content-length out of a header block. */
function parseHead(buf: Uint8Array, end: number): { status: number; length: number } {
  const head = decoder.decode(buf.subarray(0, end));
  const status = Number(head.slice(9, 12));
  const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  if (m === null) throw new Error(`response without content-length: ${head.slice(0, 200)}`);
  return { status, length: Number(m[1]) };
}

/** One keep-alive connection. */
class Conn {
  readonly #c: Deno.TcpConn;
  #buf = new Uint8Array(64 * 1024);
  #len = 0;

  constructor(c: Deno.TcpConn) {
    this.#c = c;
    c.setNoDelay(true);
  }

  /** Sends one request and waits for the whole answer; returns its status. */
  async roundTrip(req: Uint8Array): Promise<number> {
    let off = 0;
    while (off < req.byteLength) off += await this.#c.write(req.subarray(off));
    for (;;) {
      const end = indexOfHeaderEnd(this.#buf, this.#len);
      if (end >= 0) {
        const { status, length } = parseHead(this.#buf, end);
        while (this.#len < end + length) await this.#fill();
        // Keep any bytes past this answer (there are none without pipelining).
        this.#buf.copyWithin(0, end + length, this.#len);
        this.#len -= end + length;
        return status;
      }
      await this.#fill();
    }
  }

  async #fill(): Promise<void> {
    if (this.#len === this.#buf.byteLength) {
      const bigger = new Uint8Array(this.#buf.byteLength * 2);
      bigger.set(this.#buf);
      this.#buf = bigger;
    }
    const n = await this.#c.read(this.#buf.subarray(this.#len));
    if (n === null) throw new Error("connection closed by server");
    this.#len += n;
  }

  close(): void {
    this.#c.close();
  }
}

function sleepMs(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Runs one phase. */
export async function runLoad(job: LoadJob): Promise<LoadResult> {
  const reqs = job.bodies.map((b) => requestBytes(job, b));
  const conns = await Promise.all(
    Array.from(
      { length: job.concurrency },
      async () => new Conn(await Deno.connect({ hostname: job.host, port: job.port })),
    ),
  );
  const latencies: number[] = [];
  let errors = 0;
  let next = 0;
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  const deadline = start + job.seconds * 1000;
  const intervalMs = job.ratePerSec > 0 ? 1000 / job.ratePerSec : 0;
  const loop = async (conn: Conn) => {
    for (;;) {
      const k = next++;
      if (job.once && k >= reqs.length) return;
      let t0 = performance.now();
      if (intervalMs > 0) {
        const due = start + k * intervalMs;
        if (due >= deadline) return;
        if (due - t0 > 0.5) {
          // Early: wait. Timers fire up to a ms or so late; that lateness is the client's, so
          // the clock starts when this connection actually sends.
          await sleepMs(due - t0);
          t0 = performance.now();
        } else {
          // Due already (this connection was busy with earlier answers): the wait since the due
          // time is queueing the server caused, and counts.
          t0 = Math.min(t0, due);
        }
      } else if (t0 >= deadline) {
        return;
      }
      const status = await conn.roundTrip(reqs[k % reqs.length]!);
      latencies.push(performance.now() - t0);
      if (status !== 200) errors++;
    }
  };
  await Promise.all(conns.map(loop));
  const seconds = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpu0);
  for (const c of conns) c.close();
  latencies.sort((a, b) => a - b);
  return { latenciesMs: latencies, seconds, errors, cpuUs: cpu.user + cpu.system };
}

async function main(): Promise<void> {
  const job = JSON.parse(await new Response(Deno.stdin.readable).text()) as LoadJob;
  const result = await runLoad(job);
  const bytes = encoder.encode(JSON.stringify(result));
  let off = 0;
  while (off < bytes.byteLength) off += Deno.stdout.writeSync(bytes.subarray(off));
}

if (import.meta.main) await main();
