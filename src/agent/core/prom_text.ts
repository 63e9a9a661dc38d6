/**
 * A small Prometheus text-format (0.0.4) parser for the metrics the agent reads from inside a VM.
 * It never throws: malformed lines are counted and skipped, and input size is bounded by the
 * caller. Pure: no I/O.
 * @module
 */

/** One sample: its labels and value. */
export interface PromSample {
  /** Label pairs, unescaped. */
  readonly labels: Readonly<Record<string, string>>;
  /** Sample value (may be NaN or ±Infinity). */
  readonly value: number;
}

/** All samples of one metric name, with the declared `# TYPE` when there was one. */
export interface PromFamily {
  /** `gauge`, `counter`, `untyped`, … as declared; `undefined` when undeclared. */
  readonly type: string | undefined;
  /** Samples in input order. */
  readonly samples: PromSample[];
}

/** Result of parsing: families by metric name and the number of lines that were skipped. */
export interface PromParse {
  /** Families keyed by sample name. */
  readonly families: Map<string, PromFamily>;
  /** Lines that could not be parsed. */
  readonly badLines: number;
}

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME_RE = /^[a-zA-Z_][a-zA-Z0-9_]*/;

function parseValue(s: string): number | undefined {
  switch (s) {
    case "NaN":
      return NaN;
    case "+Inf":
    case "Inf":
      return Infinity;
    case "-Inf":
      return -Infinity;
  }
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) return undefined;
  return Number(s);
}

/** Parses `{a="b",c="d"}` starting at `i` (pointing at `{`); returns labels and the next index. */
function parseLabels(
  line: string,
  start: number,
): { labels: Record<string, string>; next: number } | undefined {
  const labels: Record<string, string> = {};
  let i = start + 1;
  for (;;) {
    while (line[i] === " " || line[i] === "\t") i++;
    if (line[i] === "}") return { labels, next: i + 1 };
    const m = LABEL_NAME_RE.exec(line.slice(i));
    if (!m) return undefined;
    const name = m[0];
    i += name.length;
    while (line[i] === " ") i++;
    if (line[i] !== "=") return undefined;
    i++;
    while (line[i] === " ") i++;
    if (line[i] !== '"') return undefined;
    i++;
    let value = "";
    for (;;) {
      const c = line[i];
      if (c === undefined) return undefined;
      if (c === '"') break;
      if (c === "\\") {
        const n = line[i + 1];
        if (n === "n") value += "\n";
        else if (n === "\\" || n === '"') value += n;
        else return undefined;
        i += 2;
        continue;
      }
      value += c;
      i++;
    }
    i++;
    labels[name] = value;
    while (line[i] === " ") i++;
    if (line[i] === ",") {
      i++;
      continue;
    }
    if (line[i] === "}") return { labels, next: i + 1 };
    return undefined;
  }
}

/** Parses Prometheus text exposition; never throws. */
export function parsePromText(text: string): PromParse {
  const families = new Map<string, PromFamily>();
  const types = new Map<string, string>();
  let badLines = 0;
  const family = (name: string): PromFamily => {
    let f = families.get(name);
    if (f === undefined) {
      f = { type: types.get(name), samples: [] };
      families.set(name, f);
    }
    return f;
  };
  for (const raw of text.split("\n")) {
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    const trimmed = line.trim();
    if (trimmed === "") continue;
    if (trimmed.startsWith("#")) {
      const parts = trimmed.split(/\s+/);
      if (parts[1] === "TYPE" && parts[2] !== undefined && parts[3] !== undefined) {
        types.set(parts[2], parts[3]);
        const existing = families.get(parts[2]);
        if (existing !== undefined) families.set(parts[2], { ...existing, type: parts[3] });
      }
      continue;
    }
    const nm = NAME_RE.exec(trimmed);
    if (!nm) {
      badLines++;
      continue;
    }
    const name = nm[0];
    let i = name.length;
    let labels: Record<string, string> = {};
    if (trimmed[i] === "{") {
      const parsed = parseLabels(trimmed, i);
      if (parsed === undefined) {
        badLines++;
        continue;
      }
      labels = parsed.labels;
      i = parsed.next;
    }
    const rest = trimmed.slice(i).trim().split(/\s+/);
    const value = rest[0] === undefined ? undefined : parseValue(rest[0]);
    if (
      value === undefined || rest.length > 2 || (rest[1] !== undefined && !/^-?\d+$/.test(rest[1]))
    ) {
      badLines++;
      continue;
    }
    family(name).samples.push({ labels, value });
  }
  // Families seen before their TYPE line pick it up here.
  for (const [name, f] of families) {
    if (f.type === undefined && types.has(name)) {
      families.set(name, { ...f, type: types.get(name) });
    }
  }
  return { families, badLines };
}
