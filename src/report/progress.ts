/**
 * Progress of a transfer: the callbacks the pipelines report through (TransferProgress: they
 * know nothing of terminals or JSON), and the arithmetic the reporter prints — the rate over a
 * sliding window, the ETA, and the one line of facts. Pure functions over numbers and an
 * injected clock, so every figure is unit-tested.
 */
import { formatSize } from "../util/size.ts";

/** What a pipeline tells about the transfer it runs. */
export interface TransferProgress {
  /** A transfer begins. Bytes and parts already done (a resumed backup) count from here. */
  start(t: TransferStart): void;
  /** Bytes done so far in this transfer (absolute, may step back when a part is re-sent). */
  bytes(done: number): void;
  /** One part is done (stored, received, or checked). */
  part(p: PartDone): void;
}

export interface TransferStart {
  backupId?: string;
  level?: number;
  snapshot?: string;
  /** Bytes the transfer moves in all; null when unknown. */
  bytesExpected: number | null;
  /** Where an estimate came from ("zfs send -nP", "referenced", …); absent when the figure is exact. */
  estimate?: string;
  parts: number | null;
  partsDone?: number;
  bytesDone?: number;
}

export interface PartDone {
  backupId: string;
  index: number;
  /** Plaintext bytes of the part (ciphertext for verify). */
  bytes: number;
  ok?: boolean;
}

/** The facts of a transfer at one moment. */
export interface ProgressFacts {
  bytesDone: number;
  bytesExpected: number | null;
  estimated: boolean;
  /** Bytes per second over the recent window; null until there is a window to measure. */
  rate: number | null;
  etaSeconds: number | null;
  partsDone: number;
  parts: number | null;
  elapsedSeconds: number;
  /** The bandwidth limit in force (bytes/s; null: off at this hour); absent when the run has none. */
  limit?: number | null;
}

/** Bytes per second over the last `windowMs` of samples (at least `minSpanMs` of them). */
export class RateWindow {
  private samples: { t: number; bytes: number }[] = [];
  constructor(
    private readonly windowMs = 30_000,
    private readonly minSpanMs = 1_000,
  ) {}

  add(t: number, bytes: number): void {
    this.samples.push({ t, bytes });
    // Keep one sample at or before the window's start, so the window is always full once it can be.
    while (this.samples.length > 2 && this.samples[1]!.t <= t - this.windowMs) this.samples.shift();
  }

  rate(): number | null {
    const first = this.samples[0];
    const last = this.samples.at(-1);
    if (!first || !last || last.t - first.t < this.minSpanMs) return null;
    return Math.max(0, ((last.bytes - first.bytes) * 1000) / (last.t - first.t));
  }
}

/** Seconds left at `rate`; null when the total or the rate is unknown, or the estimate is already passed. */
export function etaSeconds(done: number, expected: number | null, rate: number | null): number | null {
  if (expected === null || rate === null || rate <= 0 || done > expected) return null;
  return (expected - done) / rate;
}

/** "45s", "3m 20s", "2h 05m", "3d 4h"; "unknown" for null. */
export function formatEta(s: number | null): string {
  if (s === null || !Number.isFinite(s)) return "unknown";
  const t = Math.ceil(s);
  if (t < 60) return `${t}s`;
  if (t < 3600) return `${Math.floor(t / 60)}m ${String(t % 60).padStart(2, "0")}s`;
  if (t < 86_400) return `${Math.floor(t / 3600)}h ${String(Math.floor((t % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(t / 86_400)}d ${Math.floor((t % 86_400) / 3600)}h`;
}

export function formatRate(bytesPerSecond: number | null): string {
  return bytesPerSecond === null ? "? B/s" : `${formatSize(Math.round(bytesPerSecond))}/s`;
}

/** Whole percent done, never 100 before the end: null when the total is unknown. */
export function percent(done: number, expected: number | null): number | null {
  if (expected === null || expected <= 0) return null;
  return Math.min(99, Math.floor((done * 100) / expected));
}

/** "1.2 GiB of ~3.4 GiB (35%), 45.1 MiB/s, ETA 50s, parts 1/3[, limit 5 MiB/s]" — the word ETA is always there. */
export function progressLine(f: ProgressFacts): string {
  const pct = percent(f.bytesDone, f.bytesExpected);
  const of = f.bytesExpected === null ? "" : ` of ${f.estimated ? "~" : ""}${formatSize(f.bytesExpected)}${pct === null ? "" : ` (${pct}%)`}`;
  const parts = `parts ${f.partsDone}/${f.parts === null ? "?" : `${f.estimated ? "~" : ""}${f.parts}`}`;
  const limit = f.limit === undefined ? "" : `, limit ${f.limit === null ? "off" : formatRate(f.limit)}`;
  return `${formatSize(f.bytesDone)}${of}, ${formatRate(f.rate)}, ETA ${formatEta(f.etaSeconds)}, ${parts}${limit}`;
}
