/**
 * The bench's table: medians of the runs per row (peak RSS: the largest), each zrb row's
 * ratio to the row it is compared with, and the strongest native pipeline of the run.
 */
import type { Sample } from "./proc.ts";

export interface Row {
  label: string;
  kind: "ref" | "native" | "zrb" | "e2e" | "wan" | "tree" | "parts";
  /** Label of the row this one is compared with ("best native": the strongest native pipeline). */
  ref?: string;
  samples: Sample[];
}

export interface Agg {
  mbs: number;
  seconds: number;
  cpu: number;
  rss: number;
  check?: string;
  note: string;
}

export const BEST_NATIVE = "best native";

export function median(xs: number[]): number {
  const v = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

export function aggregate(row: Row): Agg {
  const s = row.samples;
  const errs = s.map((x) => x.error).filter(Boolean);
  const checks = [...new Set(s.map((x) => x.check).filter(Boolean))];
  return {
    mbs: median(s.map((x) => x.mbs)),
    seconds: median(s.map((x) => x.seconds)),
    cpu: median(s.map((x) => x.cpu)),
    rss: Math.max(...s.map((x) => (Number.isNaN(x.rssMiB) ? -1 : x.rssMiB))),
    check: checks.length === 1 ? checks[0] : checks.find((c) => c !== "ok"),
    note: [errs.length ? `FAILED (${errs.length}/${s.length}): ${errs[0]}` : "", s.at(-1)?.note ?? ""].filter(Boolean).join("; "),
  };
}

/** The end-to-end rows' counterpart of BEST_NATIVE: the faster stock-tool e2e row of the run. */
export const BEST_NATIVE_E2E = "best native e2e";

/** Of the rows `pick` accepts, the one with the most MB/s whose output checked ok. */
function fastest(rows: Row[], agg: Map<string, Agg>, pick: (r: Row) => boolean): Row | undefined {
  const ok = rows.filter((r) => pick(r) && agg.get(r.label)!.check === "ok" && !Number.isNaN(agg.get(r.label)!.mbs));
  return ok.sort((x, y) => agg.get(y.label)!.mbs - agg.get(x.label)!.mbs)[0];
}

/** The native pipeline with the most MB/s whose output checked ok. */
export function bestNative(rows: Row[], agg: Map<string, Agg>): Row | undefined {
  return fastest(rows, agg, (r) => r.kind === "native");
}

/** The label a row is compared with: its own ref, or the strongest row of the run for the "best" refs. */
function refOf(row: Row, rows: Row[], agg: Map<string, Agg>, best: Row | undefined): string | undefined {
  if (row.ref === BEST_NATIVE) return best?.label;
  if (row.ref === BEST_NATIVE_E2E) return fastest(rows, agg, (r) => r.kind === "e2e" && r.ref === undefined)?.label;
  return row.ref;
}

export const fmt = (x: number, d = 0) => (Number.isNaN(x) ? "—" : x.toFixed(d));

export function printTable(rows: Row[], agg: Map<string, Agg>, best: Row | undefined): void {
  const head = ["stage", "MB/s", "s", "cpu s", "peak RSS MiB", "ratio", "check", "vs / note"];
  const body = rows.map((row) => {
    const g = agg.get(row.label)!;
    const refLabel = refOf(row, rows, agg, best);
    const ref = refLabel ? agg.get(refLabel) : undefined;
    return [
      row.label,
      fmt(g.mbs),
      fmt(g.seconds, 2),
      fmt(g.cpu, 2),
      g.rss < 0 ? "—" : fmt(g.rss, 1),
      ref ? fmt(g.mbs / ref.mbs, 2) : "",
      g.check ?? "",
      [refLabel ? `vs ${refLabel}${row.ref === BEST_NATIVE || row.ref === BEST_NATIVE_E2E ? " (best native)" : ""}` : "", g.note].filter(Boolean).join("; "),
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 || i >= 6 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ").trimEnd();
  console.log(line(head));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const [i, b] of body.entries()) {
    if (i > 0 && rows[i]!.kind !== rows[i - 1]!.kind) console.log("");
    console.log(line(b));
  }
}
