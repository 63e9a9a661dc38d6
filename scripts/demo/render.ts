/**
 * Pure rendering for the demo and `deno task status`: the live table of VMs and node reservations,
 * and the timeline of a demo run as CSV and as an SVG picture. No I/O.
 * @module
 */
import { formatBinarySi, formatMilliCpu, GiB } from "../../src/api/quantity.ts";

/** One VM as the table shows it. */
export interface VmRow {
  /** `namespace/name`. */
  readonly vm: string;
  /** VM phase. */
  readonly phase: string;
  /** Node the runner pod is on, if any. */
  readonly node: string;
  /** `spec.guest.cpus.use`, MilliCPU. */
  readonly cpuUseMilli: number;
  /** `status.cpus`, MilliCPU, what the guest has. */
  readonly cpuStatusMilli: number | undefined;
  /** Scheduler-approved CPU (annotation), MilliCPU. */
  readonly cpuApprovedMilli: number | undefined;
  /** `memorySlots.use × slotSize`, bytes. */
  readonly memUseBytes: number;
  /** `status.memorySize`, bytes. */
  readonly memStatusBytes: number | undefined;
  /** Scheduler-approved memory (annotation), bytes. */
  readonly memApprovedBytes: number | undefined;
}

/** One node's reservation. */
export interface NodeRow {
  /** Node name. */
  readonly node: string;
  /** Sum of approved CPU on the node, MilliCPU. */
  readonly cpuReservedMilli: number;
  /** Allocatable CPU, MilliCPU. */
  readonly cpuTotalMilli: number;
  /** Sum of approved memory on the node, bytes. */
  readonly memReservedBytes: number;
  /** Allocatable memory, bytes. */
  readonly memTotalBytes: number;
}

const cpu = (m: number | undefined) => m === undefined ? "-" : formatMilliCpu(m);
const mem = (b: number | undefined) => b === undefined ? "-" : formatBinarySi(roundMiB(b));
function roundMiB(b: number): number {
  return Math.round(b / (1024 * 1024)) * 1024 * 1024;
}

/** Lays out rows as a fixed-width text table with a header. */
export function textTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const fmt = (r: readonly string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  return [fmt(header), ...rows.map(fmt)].join("\n");
}

/** The live table: VMs, then node reservations. */
export function renderStatus(vms: readonly VmRow[], nodes: readonly NodeRow[]): string {
  const vmTable = textTable(
    [
      "VM",
      "PHASE",
      "NODE",
      "CPU USE",
      "CPU GUEST",
      "CPU APPROVED",
      "MEM USE",
      "MEM GUEST",
      "MEM APPROVED",
    ],
    vms.map((v) => [
      v.vm,
      v.phase,
      v.node || "-",
      cpu(v.cpuUseMilli),
      cpu(v.cpuStatusMilli),
      cpu(v.cpuApprovedMilli),
      mem(v.memUseBytes),
      mem(v.memStatusBytes),
      mem(v.memApprovedBytes),
    ]),
  );
  const pct = (a: number, b: number) => b > 0 ? `${Math.round((a / b) * 100)}%` : "-";
  const nodeTable = textTable(
    ["NODE", "CPU RESERVED", "CPU TOTAL", "CPU %", "MEM RESERVED", "MEM TOTAL", "MEM %"],
    nodes.map((n) => [
      n.node,
      cpu(n.cpuReservedMilli),
      cpu(n.cpuTotalMilli),
      pct(n.cpuReservedMilli, n.cpuTotalMilli),
      mem(n.memReservedBytes),
      mem(n.memTotalBytes),
      pct(n.memReservedBytes, n.memTotalBytes),
    ]),
  );
  return `${vmTable}\n\n${nodeTable}`;
}

/** One point of a demo timeline. */
export interface Sample {
  /** Seconds since the demo's load started. */
  readonly tSec: number;
  /** Guest 1-minute load average, if read. */
  readonly loadAvg1m: number | undefined;
  /** Guest memory in use, bytes, if read. */
  readonly memUsedBytes: number | undefined;
  /** CPU the guest has (status.cpus), MilliCPU. */
  readonly cpuMilli: number;
  /** Memory the guest has (status.memorySize), bytes. */
  readonly memBytes: number;
  /** Name of the demo phase (e.g. `cpu-load`, `memory-load`, `idle`). */
  readonly stage: string;
}

/** The timeline as CSV with a header row. */
export function samplesToCsv(samples: readonly Sample[]): string {
  const rows = samples.map((s) =>
    [
      s.tSec.toFixed(1),
      s.stage,
      s.loadAvg1m?.toFixed(2) ?? "",
      s.memUsedBytes === undefined ? "" : (s.memUsedBytes / GiB).toFixed(3),
      (s.cpuMilli / 1000).toFixed(2),
      (s.memBytes / GiB).toFixed(3),
    ].join(",")
  );
  return ["t_seconds,stage,load_avg_1m,mem_used_gib,cpu_allocated_vcpus,mem_allocated_gib", ...rows]
    .join("\n") + "\n";
}

function esc(s: string): string {
  return s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

interface Series {
  readonly label: string;
  readonly color: string;
  readonly dashed?: boolean;
  readonly points: readonly (readonly [number, number | undefined])[];
}

function panel(
  title: string,
  unit: string,
  series: readonly Series[],
  box: { x: number; y: number; w: number; h: number },
  tMax: number,
): string {
  const values = series.flatMap((s) => s.points.map((p) => p[1]).filter((v) => v !== undefined));
  const yMax = Math.max(1, ...values) * 1.1;
  const sx = (t: number) => box.x + (tMax > 0 ? (t / tMax) * box.w : 0);
  const sy = (v: number) => box.y + box.h - (v / yMax) * box.h;
  const out: string[] = [];
  out.push(
    `<rect x="${box.x}" y="${box.y}" width="${box.w}" height="${box.h}" fill="#fafafa" stroke="#ccc"/>`,
  );
  out.push(
    `<text x="${box.x}" y="${box.y - 8}" font-size="14" font-weight="bold">${esc(title)}</text>`,
  );
  for (let i = 0; i <= 4; i++) {
    const v = (yMax / 4) * i;
    out.push(
      `<line x1="${box.x}" x2="${box.x + box.w}" y1="${sy(v)}" y2="${sy(v)}" stroke="#eee"/>`,
    );
    out.push(
      `<text x="${box.x - 6}" y="${sy(v) + 4}" font-size="10" text-anchor="end">${
        v.toFixed(v < 10 ? 1 : 0)
      }${unit}</text>`,
    );
  }
  series.forEach((s, i) => {
    const segs: string[] = [];
    let pen = "M";
    for (const [t, v] of s.points) {
      if (v === undefined) {
        pen = "M";
        continue;
      }
      segs.push(`${pen}${sx(t).toFixed(1)},${sy(v).toFixed(1)}`);
      pen = "L";
    }
    out.push(
      `<path d="${segs.join(" ")}" fill="none" stroke="${s.color}" stroke-width="2"${
        s.dashed ? ' stroke-dasharray="6 4"' : ""
      }/>`,
    );
    const lx = box.x + 10 + i * 200;
    out.push(
      `<line x1="${lx}" x2="${lx + 20}" y1="${box.y + 14}" y2="${
        box.y + 14
      }" stroke="${s.color}" stroke-width="2"/>`,
    );
    out.push(`<text x="${lx + 26}" y="${box.y + 18}" font-size="11">${esc(s.label)}</text>`);
  });
  return out.join("\n");
}

/** The timeline as an SVG: CPU (load vs allocated vCPUs) above memory (used vs allocated GiB). */
export function renderTimelineSvg(samples: readonly Sample[], title: string): string {
  const W = 960;
  const H = 600;
  const tMax = Math.max(1, ...samples.map((s) => s.tSec));
  const box1 = { x: 70, y: 60, w: W - 100, h: 200 };
  const box2 = { x: 70, y: 330, w: W - 100, h: 200 };
  const stages: string[] = [];
  let prev = "";
  for (const s of samples) {
    if (s.stage !== prev) {
      const x = box1.x + (s.tSec / tMax) * box1.w;
      stages.push(
        `<line x1="${x}" x2="${x}" y1="${box1.y}" y2="${
          box2.y + box2.h
        }" stroke="#999" stroke-dasharray="2 3"/>`,
        `<text x="${x + 3}" y="${box2.y + box2.h + 30}" font-size="10" fill="#555">${
          esc(s.stage)
        }</text>`,
      );
      prev = s.stage;
    }
  }
  const cpuPanel = panel(
    "CPU",
    "",
    [
      {
        label: "load average (1 min)",
        color: "#d62728",
        points: samples.map((s) => [s.tSec, s.loadAvg1m]),
      },
      {
        label: "allocated vCPUs",
        color: "#1f77b4",
        points: samples.map((s) => [s.tSec, s.cpuMilli / 1000]),
      },
    ],
    box1,
    tMax,
  );
  const memPanel = panel(
    "Memory",
    "G",
    [
      {
        label: "used (GiB)",
        color: "#ff7f0e",
        points: samples.map((
          s,
        ) => [s.tSec, s.memUsedBytes === undefined ? undefined : s.memUsedBytes / GiB]),
      },
      {
        label: "allocated (GiB)",
        color: "#2ca02c",
        points: samples.map((s) => [s.tSec, s.memBytes / GiB]),
      },
    ],
    box2,
    tMax,
  );
  const axis = `<text x="${box2.x + box2.w / 2}" y="${
    H - 10
  }" font-size="12" text-anchor="middle">seconds since start (0 – ${tMax.toFixed(0)})</text>`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="28" font-size="18" text-anchor="middle">${esc(title)}</text>`,
    cpuPanel,
    memPanel,
    ...stages,
    axis,
    "</svg>",
    "",
  ].join("\n");
}
