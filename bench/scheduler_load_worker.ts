/**
 * Load generator for bench/scheduler_bench.ts, run as a Web Worker so the client's HTTP work does
 * not share the scheduler's thread. Receives `{url, concurrency, seconds, bodies}` (bodies are
 * used round-robin; a body is never reused within a run when `once` is set) and posts back the
 * sorted latencies in milliseconds, the wall time and the number of non-200 answers.
 * @module
 */
interface Job {
  url: string;
  concurrency: number;
  seconds: number;
  bodies: string[];
  once: boolean;
}

const self_ = globalThis as unknown as {
  onmessage: ((e: MessageEvent<Job>) => void) | null;
  postMessage: (m: unknown) => void;
};

self_.onmessage = async (e: MessageEvent<Job>) => {
  const job = e.data;
  const latencies: number[] = [];
  let errors = 0;
  let k = 0;
  const deadline = performance.now() + job.seconds * 1000;
  const worker = async () => {
    while (performance.now() < deadline) {
      if (job.once && k >= job.bodies.length) return;
      const body = job.bodies[k++ % job.bodies.length]!;
      const t0 = performance.now();
      const res = await fetch(job.url, {
        method: "POST",
        body,
        headers: { "content-type": "application/json" },
      });
      await res.arrayBuffer();
      latencies.push(performance.now() - t0);
      if (res.status !== 200) errors++;
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: job.concurrency }, worker));
  const seconds = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  self_.postMessage({ latencies, seconds, errors });
};
